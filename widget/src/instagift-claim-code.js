// <instagift-claim-code>: lets a shopper pay with Instagift claim codes on a storefront's checkout page.
// Dependency-free custom element with a shadow root; talks to the service's public /v1 cart endpoints.
import css from "./styles.css";
import { STRINGS } from "./strings.js";

const fill = (text, values) => text.replace(/\{(\w+)\}/g, (m, k) => (k in values ? values[k] : m));
const REASONS = { redeemed: "redeemed", expired: "expired", cancelled: "cancelled" };

// Small element builder: keeps untrusted text out of innerHTML.
const h = (tag, props, ...children) => {
  const el = document.createElement(tag);
  Object.assign(el, props);
  el.append(...children.filter((c) => c != null));
  return el;
};

class InstagiftClaimCode extends HTMLElement {
  static observedAttributes = ["total-cents", "strings", "currency", "locale"];

  constructor() {
    super();
    this._overrides = {};
    this._queue = Promise.resolve();
    this._view = null;
    this._token = null;
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML =
      `<style>${css}</style><div class="w" part="container"><div part="form">` +
      `<label for="i" part="label"></label><div class="row"><input id="i" part="input" autocomplete="off" ` +
      `autocapitalize="characters" spellcheck="false" aria-describedby="m"><button part="button apply-button" ` +
      `type="button"></button></div></div><p id="m" class="m" part="message" role="status"></p>` +
      `<div class="c" part="confirm" hidden><p id="f"></p><div><button class="y" part="button confirm-button" ` +
      `type="button" aria-describedby="f"></button><button class="s n" part="button cancel-button" type="button">` +
      `</button></div></div><ul part="cards" hidden></ul><p class="d" part="due" hidden><span></span> <span part="due-amount"></span></p></div>`;
    const $ = (s) => root.querySelector(s);
    this._els = { label: $("label"), input: $("input"), apply: $(".row button"), msg: $(".m"),
      confirm: $(".c"), ask: $("#f"), yes: $(".y"), no: $(".n"), list: $("ul"), due: $(".d") };
    const e = this._els;
    // No inner <form>: the parser drops a form nested in the shop's checkout form, even in a shadow root.
    e.input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        this._apply(false);
      }
    });
    e.apply.addEventListener("click", () => this._apply(false));
    e.yes.addEventListener("click", () => this._apply(true));
    e.no.addEventListener("click", () => {
      this._hideConfirm();
      this._say(this._t().forfeitCancelled);
      e.input.focus();
    });
  }

  /** Text overrides for another language; merged over the English defaults. */
  get strings() {
    return this._t();
  }

  set strings(value) {
    this._overrides = { ...value };
    this._texts();
  }

  /** The current cart view (null until the cart exists). */
  get cart() {
    return this._view;
  }

  connectedCallback() {
    this._texts();
    if (this.closest("form") && !this._hidden) {
      // Inputs inside a shadow root never submit with the page's form, so the token lives in light DOM.
      this._hidden = h("input", { type: "hidden", name: this.getAttribute("input-name") || "instagift_cart_token" });
      this.append(this._hidden);
    }
    this._enqueue(() => this._sync());
  }

  attributeChangedCallback(name, before, after) {
    if (name === "strings") {
      try {
        this._overrides = JSON.parse(after || "{}");
      } catch {
        this._overrides = {};
      }
    }
    if (!this.isConnected) return;
    if (name === "total-cents" && before !== after) this._enqueue(() => this._sync());
    else this._texts();
  }

  _t() {
    return { ...STRINGS, ...this._overrides };
  }

  _base() {
    return (this.getAttribute("api-base") || "").replace(/\/+$/, "");
  }

  _total() {
    return parseInt(this.getAttribute("total-cents"), 10);
  }

  _money(cents) {
    const currency = this.getAttribute("currency") || this._view?.currency || "USD";
    const locale = this.getAttribute("locale") || document.documentElement.lang || undefined;
    return new Intl.NumberFormat(locale, { style: "currency", currency }).format(cents / 100);
  }

  // Cart requests run one at a time so a total change never races an apply or a remove.
  _enqueue(task) {
    const run = this._queue.then(task);
    this._queue = run.catch(() => {});
    return run;
  }

  async _request(method, path, body) {
    let response;
    try {
      response = await fetch(this._base() + path, {
        method,
        credentials: "omit",
        headers: body ? { "Content-Type": "application/json", Accept: "application/json" } : { Accept: "application/json" },
        body: body && JSON.stringify(body),
      });
    } catch {
      throw { code: "network" };
    }
    const data = response.status === 204 ? null : await response.json().catch(() => ({}));
    if (!response.ok) {
      throw { status: response.status, code: data?.code || "", data: data || {}, retry: response.headers.get("Retry-After") };
    }
    return data;
  }

  _storageKey() {
    return "instagift:cart:" + (this._base() || location.origin);
  }

  async _ensureCart() {
    if (this._view) return;
    let token = null;
    try {
      token = sessionStorage.getItem(this._storageKey());
    } catch {}
    if (token) {
      try {
        return this._show(await this._request("GET", `/v1/carts/${encodeURIComponent(token)}`), token);
      } catch (err) {
        if (err.status !== 404 && err.status !== 410) throw err;
      }
    }
    const view = await this._request("POST", "/v1/carts", {
      total_cents: this._total(),
      currency: this.getAttribute("currency") || "USD",
    });
    this._show(view, view.cart_token);
  }

  async _sync() {
    if (!(this._total() >= 0)) return;
    try {
      await this._ensureCart();
      if (this._view.total_cents !== this._total()) {
        const before = this._view.gift_cards || [];
        const view = await this._request("PUT", this._cartPath(), { total_cents: this._total() });
        this._show(view);
        const t = this._t();
        const due = { due: this._money(view.amount_due_cents) };
        const kept = new Set((view.gift_cards || []).map((c) => c.id));
        // The service takes off a non-splittable card that would now forfeit more than the shopper agreed to.
        const said = before.filter((c) => !kept.has(c.id)).map((c) => fill(t.forfeitReleased, { code: c.code }));
        if (this._pending) {
          // The forfeit question quoted the old amount due: withdraw it rather than let it be accepted as shown.
          this._hideConfirm();
          said.push(fill(t.totalChangedWhileAsking, due));
        } else if (said.length || view.gift_cards?.length) said.push(fill(t.totalChanged, due));
        if (said.length) this._say(said.join(" "));
      }
    } catch (err) {
      await this._fail(err);
    }
  }

  _cartPath(suffix = "") {
    return `/v1/carts/${encodeURIComponent(this._token)}${suffix}`;
  }

  _apply(acceptForfeit) {
    const e = this._els;
    const code = acceptForfeit ? this._pending : e.input.value.trim();
    if (!code) {
      this._say(this._t().empty, true);
      return e.input.focus();
    }
    if (this._busy) return;
    this._setBusy(true);
    this._say(this._t().applying);
    return this._enqueue(async () => {
      try {
        await this._ensureCart();
        const known = new Set((this._view.gift_cards || []).map((c) => c.id));
        // Consent binds to the amount shown: a larger forfeit (the cart changed meanwhile) is asked again.
        const body = acceptForfeit
          ? { claim_code: code, accept_forfeit: true, accept_forfeit_cents: this._pendingForfeit }
          : { claim_code: code };
        const view = await this._request("POST", this._cartPath("/gift-cards"), body);
        if (acceptForfeit) e.input.focus();
        this._hideConfirm();
        e.input.value = "";
        this._show(view);
        const card = view.gift_cards.find((c) => !known.has(c.id)) || view.gift_cards[view.gift_cards.length - 1];
        this._say(fill(this._t().added, {
          code: card?.code || "", amount: this._money(card?.covers_cents ?? card?.applied_cents ?? 0), due: this._money(view.amount_due_cents),
        }));
      } catch (err) {
        await this._fail(err, code);
      } finally {
        this._setBusy(false);
      }
    });
  }

  _remove(card) {
    return this._enqueue(async () => {
      try {
        let view = await this._request("DELETE", this._cartPath(`/gift-cards/${encodeURIComponent(card.id)}`));
        if (!view?.gift_cards) view = await this._request("GET", this._cartPath());
        this._show(view);
        this._say(fill(this._t().removed, { code: card.code, due: this._money(view.amount_due_cents) }));
      } catch (err) {
        await this._fail(err);
      }
      // The Remove button is gone; keep keyboard users in the widget.
      this._els.input.focus();
    });
  }

  async _fail(err, code) {
    const t = this._t();
    const data = err.data || {};
    let message;
    switch (err.code) {
      case "network":
        message = t.network;
        break;
      case "gift_card_not_found":
        message = t.notFound;
        break;
      case "gift_card_not_redeemable":
        message = t[REASONS[data.reason]] || t.notRedeemable;
        break;
      case "gift_card_in_use":
        message = t.inUse;
        break;
      case "rate_limited":
        message = fill(t.rateLimited, { seconds: parseInt(err.retry, 10) || data.retry_after || 60 });
        break;
      case "forfeit_not_accepted":
        return this._askForfeit(code, data);
      default:
        if (err.status === 410 || (err.status === 404 && /^cart/.test(err.code))) {
          // The cart expired server-side: start a new one so the shopper can simply apply again.
          this._view = null;
          try {
            sessionStorage.removeItem(this._storageKey());
          } catch {}
          message = t.cartExpired;
          try {
            await this._ensureCart();
          } catch {
            message = t.network;
          }
        } else {
          message = data.detail || data.title || t.failed;
        }
    }
    this._hideConfirm();
    this._els.input.setAttribute("aria-invalid", "true");
    this._say(message, true);
  }

  _askForfeit(code, data) {
    const t = this._t();
    const e = this._els;
    const forfeit = data.forfeit_cents || 0;
    const due = this._view?.amount_due_cents || 0;
    const values = { forfeit: this._money(forfeit), due: this._money(due), balance: this._money(data.balance_cents || due + forfeit) };
    this._pending = code;
    this._pendingForfeit = forfeit;
    e.ask.textContent = fill(t.forfeitAsk, values);
    e.yes.textContent = fill(t.forfeitYes, values);
    e.no.textContent = t.forfeitNo;
    e.confirm.hidden = false;
    this._say("");
    e.yes.focus();
  }

  _hideConfirm() {
    this._pending = null;
    this._els.confirm.hidden = true;
  }

  _setBusy(busy) {
    this._busy = busy;
    // aria-disabled rather than disabled: a disabled button would drop keyboard focus.
    this._els.apply.setAttribute("aria-disabled", String(busy));
    this._els.yes.setAttribute("aria-disabled", String(busy));
    this._els.apply.parentNode.parentNode.setAttribute("aria-busy", String(busy));
  }

  _say(text, isError = false) {
    const { msg, input } = this._els;
    msg.textContent = text;
    msg.className = isError ? "m e" : "m";
    if (!isError) input.removeAttribute("aria-invalid");
  }

  _texts() {
    const t = this._t();
    const e = this._els;
    e.label.textContent = t.label;
    e.apply.textContent = t.apply;
    e.list.setAttribute("aria-label", t.cardsLabel);
    e.due.firstChild.textContent = t.due;
    this._render();
  }

  _show(view, token) {
    if (token) {
      this._token = token;
      try {
        sessionStorage.setItem(this._storageKey(), token);
      } catch {}
    }
    this._view = view;
    if (this._hidden) this._hidden.value = this._token;
    this._render();
    this.dispatchEvent(new CustomEvent("instagift:change", {
      bubbles: true, composed: true, detail: { ...view, cart_token: this._token },
    }));
  }

  _render() {
    const view = this._view;
    if (!view) return;
    const t = this._t();
    const { list, due } = this._els;
    const cards = view.gift_cards || [];
    list.hidden = !cards.length;
    list.replaceChildren(...cards.map((card) => {
      // covers_cents/redeem_cents (when the service sends them) differ from applied_cents by rounding policy.
      const rest = card.balance_cents - (card.redeem_cents ?? card.applied_cents);
      const note = card.splittable
        ? rest > 0 && fill(t.splitRest, { amount: this._money(rest) })
        : card.forfeit_cents > 0 && fill(t.forfeitNote, { amount: this._money(card.forfeit_cents) });
      const remove = h("button", { type: "button", className: "s", textContent: t.remove });
      remove.setAttribute("part", "button remove-button");
      remove.setAttribute("aria-label", fill(t.removeLabel, { code: card.code }));
      remove.addEventListener("click", () => this._remove(card));
      const item = h("li", {},
        h("b", { textContent: card.code }),
        h("span", { textContent: fill(t.balance, { amount: this._money(card.balance_cents) }) }),
        h("span", { textContent: fill(t.applied, { amount: this._money(card.covers_cents ?? card.applied_cents) }) }),
        remove,
        note ? h("small", { textContent: note }) : null);
      item.setAttribute("part", "card");
      return item;
    }));
    due.hidden = false;
    due.lastChild.textContent = this._money(view.amount_due_cents);
  }
}

if (!customElements.get("instagift-claim-code")) customElements.define("instagift-claim-code", InstagiftClaimCode);
