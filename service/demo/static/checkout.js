// The demo storefront's own code (a same-origin file, for the demo's strict CSP): keep the widget's total in step
// with the cart, and show what the widget reports only while the widget's cart has the page's total, so the
// shop's figures and the widget's always agree.
const form = document.getElementById("checkout");
const widget = document.querySelector("instagift-claim-code");
const quantity = document.getElementById("tshirts");
const subtotal = document.getElementById("subtotal");
const giftCards = document.getElementById("gift-cards");
const amountDue = document.getElementById("amount-due");
const locale = widget.getAttribute("locale");
const money = (cents) => new Intl.NumberFormat(locale, { style: "currency", currency: "USD" }).format(cents / 100);
let total = Number(widget.getAttribute("total-cents"));

quantity.addEventListener("change", () => {
  total = Number(form.dataset.membershipCents) + Number(form.dataset.tshirtCents) * Number(quantity.value);
  subtotal.textContent = money(total);
  // Unknown until the service has recomputed the cards against the new total.
  giftCards.textContent = amountDue.textContent = "…";
  widget.setAttribute("total-cents", String(total));
});
widget.addEventListener("instagift:change", (event) => {
  const cart = event.detail;
  if (cart.total_cents !== total) return;  // an answer for an older total
  giftCards.textContent = "−" + money(cart.total_cents - cart.amount_due_cents);
  amountDue.textContent = money(cart.amount_due_cents);
});
