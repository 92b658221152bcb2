// The demo order page: follows the order's timeline until the worker has finished (a same-origin file, for the
// demo's strict CSP).
// The cart is spent: the next checkout starts a fresh one.
Object.keys(sessionStorage).filter((k) => k.startsWith("instagift:cart:")).forEach((k) => sessionStorage.removeItem(k));
const url = document.getElementById("order").dataset.timelineUrl;
const money = (cents) => cents == null ? "" : new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" }).format(cents / 100);
const FINISHED = ["succeeded", "dead", "parked"];
function fill(id, rows) {
  const list = document.getElementById(id);
  list.replaceChildren(...(rows.length ? rows : ["None"]).map((text) => {
    const item = document.createElement("li");
    item.textContent = text;
    return item;
  }));
}
const state = (thing) => thing.state || thing.status || "";
function render(timeline) {
  fill("redemptions", (timeline.redemptions || []).map((r) =>
    `${r.code || r.code_masked || "••••" + (r.code_last4 || "")}: ${money(r.redeemed_cents ?? r.intended_cents)} — ${state(r)}` +
    (r.shortfall_cents ? ` (shortfall ${money(r.shortfall_cents)})` : "") +
    (r.child_balance_cents ? ` (${money(r.child_balance_cents)} left on a new certificate)` : "")));
  const card = timeline.thank_you_card;
  fill("thank-you-card", card ? [`Thank-you card — ${state(card)}` + (card.reason ? ` (${card.reason})` : "")] : []);
  fill("membership-cards", (timeline.membership_cards || []).map((m) =>
    `${m.sku || "Membership"} ${m.member_number || ""} — ${state(m)}`));
  const jobs = timeline.jobs || [];
  fill("jobs", jobs.map((j) => `${j.kind} — ${j.state}` + (j.last_error ? ` (${j.last_error})` : "")));
  return jobs.length > 0 && jobs.every((j) => FINISHED.includes(j.state));
}
async function refresh() {
  const status = document.getElementById("timeline-status");
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail || body.title || response.status);
    if (render(body)) { status.textContent = "Done: the worker has finished this order."; return; }
    status.textContent = "Waiting for the worker…";
  } catch (error) {
    status.textContent = "Could not load the timeline: " + error.message;
  }
  setTimeout(refresh, 1000);
}
refresh();
