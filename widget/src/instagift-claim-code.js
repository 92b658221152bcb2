// <instagift-claim-code>: lets a shopper pay with Instagift claim codes on a storefront's checkout page, or (with
// mode="balance") check a certificate's balance. Dependency-free custom element with a shadow root; talks to the
// service's public /v1 endpoints.
import css from "./styles.css";
import { en } from "./strings.js";

// Other languages' files, by language ({es: "instagift-claim-code.es.<hash>.js"}): filled in by build.mjs. They sit
// next to this script, which is where the widget loads them from (api-base's /widget/v1/ when loaded as a module).
const LANGUAGE_FILES = __LANGUAGE_FILES__;
const SCRIPT_URL = document.currentScript?.src;
const texts = { en };
const loading = {};
const fill = (text, values) => text.replace(/\{(\w+)\}/g, (m, k) => (k in values ? values[k] : m));
const REASONS = { redeemed: "redeemed", expired: "expired", cancelled: "cancelled" };
const DEFAULT_TIMEOUT_SECONDS = 15;
// One constructable stylesheet for every instance: unlike an inline <style>, it applies under a strict CSP
// (`style-src 'self'`).
let sheet;

// Small element builder: keeps untrusted text out of innerHTML.
const h = (tag, props, ...children) => {
  const el = document.createElement(tag);
  Object.assign(el, props);
  el.append(...children.filter((c) => c != null));
  return el;
};

class InstagiftClaimCode extends HTMLElement {
  static observedAttributes = ["total-cents", "strings", "currency", "locale", "mode"];

  constructor() {
    super();
    this._overrides = {};
    this._queue = Promise.resolve();
    this._view = null;
    this._token = null;
    this._removing = new Set();
    const root = this.attachShadow({ mode: "open" });
    if (!sheet) {
      sheet = new CSSStyleSheet();
      sheet.replaceSync(css);
    }
    root.adoptedStyleSheets = [sheet];
    root.innerHTML =
      `<div class="w" part="container"><div part="form">` +
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
    e.confirm.addEventListener("keydown", (ev) => ev.key === "Escape" && e.no.click());
  }

  /** Text overrides (any key of strings.js); merged over the built-in text of the widget's language. */
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
    if (this._balanceMode()) return this._language().then(() => this._emit("ready", {}));
    if (this.closest("form") && !this._hidden) {
      // Inputs inside a shadow root never submit with the page's form, so the token lives in light DOM.
      this._hidden = h("input", { type: "hidden", name: this.getAttribute("input-name") || "instagift_cart_token" });
      this.append(this._hidden);
    }
    this._enqueue(async () => {
      await this._language();
      await this._sync();
    });
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
    if (name === "total-cents" && before !== after) {
      // A newer total supersedes whatever request is in flight: abort it, then send the new total.
      this._running?.abort();
      this._render();
      this._enqueue(() => this._sync());
    } else {
      this._texts();
      if (name === "locale") this._language();
    }
  }

  _balanceMode() {
    return this.getAttribute("mode") === "balance";
  }

  _locale() {
    return this.getAttribute("locale") || this.closest("[lang]")?.lang || navigator.language;
  }

  _lang() {
    return this._locale().slice(0, 2).toLowerCase();
  }

  // Loads the widget's language once (shared by every instance); English (bundled) meanwhile or when it fails.
  _language() {
    const lang = this._lang();
    const file = LANGUAGE_FILES[lang];
    if (!file || texts[lang]) return Promise.resolve();
    loading[lang] ||= import(new URL(file, SCRIPT_URL || new URL(this._base() + "/widget/v1/", location.href)))
      .then((module) => (texts[lang] = module.default))
      .catch(() => delete loading[lang]);
    return loading[lang].then(() => this._texts());
  }

  _t() {
    return { ...en, ...texts[this._lang()], ...this._overrides };
  }

  _base() {
    return (this.getAttribute("api-base") || "").replace(/\/+$/, "");
  }

  _total() {
    return parseInt(this.getAttribute("total-cents"), 10);
  }

  _money(cents) {
    const currency = this.getAttribute("currency") || this._view?.currency || "USD";
    return new Intl.NumberFormat(this._locale(), { style: "currency", currency }).format(cents / 100);
  }

  _emit(name, detail) {
    this.dispatchEvent(new CustomEvent("instagift:" + name, { bubbles: true, composed: true, detail }));
  }

  // Requests run one at a time so a total change never races an apply or a remove; each task gets an
  // AbortController that a newer total change aborts.
  _enqueue(task) {
    const run = this._queue.then(() => {
      this._running = new AbortController();
      return task();
    });
    this._queue = run.catch(() => {});
    return run;
  }

  async _request(method, path, body) {
    const own = new AbortController();
    const task = this._running?.signal;
    const stop = () => own.abort();
    task?.addEventListener("abort", stop);
    let late = false;
    const seconds = parseFloat(this.getAttribute("timeout")) || DEFAULT_TIMEOUT_SECONDS;
    const timer = setTimeout(() => {
      late = true;
      own.abort();
    }, seconds * 1000);
    const headers = { Accept: "application/json", "Accept-Language": this._locale() };
    if (body) headers["Content-Type"] = "application/json";
    try {
      const response = await fetch(this._base() + path, {
        method, headers, credentials: "omit", body: body && JSON.stringify(body), signal: own.signal,
      });
      const data = response.status === 204 ? null : await response.json().catch(() => ({}));
      if (own.signal.aborted) throw 0;
      if (!response.ok) {
        throw { status: response.status, code: data?.code || "", data: data || {}, retry: response.headers.get("Retry-After") };
      }
      return data;
    } catch (err) {
      // A superseded answer is dropped whole: it never overwrites what a newer request says.
      if (task?.aborted) throw { code: "superseded" };
      if (late) throw { code: "timeout" };
      throw err?.status ? err : { code: "network" };
    } finally {
      clearTimeout(timer);
      task?.removeEventListener("abort", stop);
    }
  }

  _storageKey() {
    return "instagift:cart:" + (this._base() || location.origin);
  }

  async _ensureCart() {
    if (!this._view) {
      let token = null;
      try {
        token = sessionStorage.getItem(this._storageKey());
      } catch {}
      let view;
      if (token) {
        try {
          view = await this._request("GET", `/v1/carts/${encodeURIComponent(token)}`);
        } catch (err) {
          if (err.status !== 404 && err.status !== 410) throw err;
        }
      }
      if (!view) {
        view = await this._request("POST", "/v1/carts", {
          total_cents: this._total(),
          currency: this.getAttribute("currency") || "USD",
        });
        token = view.cart_token;
      }
      this._show(view, token);
    }
    if (!this._ready) {
      this._ready = true;
      this._emit("ready", this._detail());
    }
  }

  async _sync() {
    if (!(this._total() >= 0) || this._balanceMode()) return;
    try {
      await this._ensureCart();
      await this._sendTotal();
    } catch (err) {
      await this._fail(err);
    }
  }

  // Sends the page's total when the cart has another one (a total change, or one that failed earlier);
  // true when the forfeit question had to be withdrawn.
  async _sendTotal() {
    if (this._view.total_cents === this._total()) return;
    const before = this._view.gift_cards || [];
    const labels = new Map(before.map((c) => [c.id, this._label(c)]));
    const view = await this._request("PUT", this._cartPath(), { total_cents: this._total() });
    this._show(view);
    const t = this._t();
    const due = { due: this._money(view.amount_due_cents) };
    const kept = new Set((view.gift_cards || []).map((c) => c.id));
    // The service takes off a non-splittable card that would now forfeit more than the shopper agreed to.
    const said = before.filter((c) => !kept.has(c.id)).map((c) => fill(t.forfeitReleased, { code: labels.get(c.id) }));
    const asking = this._pending;
    if (asking) {
      // The forfeit question quoted the old amount due: withdraw it rather than let it be accepted as shown.
      this._hideConfirm();
      said.push(fill(t.totalChangedWhileAsking, due));
    } else if (said.length || view.gift_cards?.length) said.push(fill(t.totalChanged, due));
    if (said.length) this._say(said.join(" "));
    return asking;
  }

  _cartPath(suffix = "") {
    return `/v1/carts/${encodeURIComponent(this._token)}${suffix}`;
  }

  _apply(acceptForfeit) {
    const e = this._els;
    const t = this._t();
    const code = acceptForfeit ? this._pending : e.input.value.trim();
    if (!code) {
      this._say(t.empty, true);
      return e.input.focus();
    }
    if (this._busy) return;
    this._setBusy(true);
    this._say(t.applying);
    return this._enqueue(async () => {
      try {
        if (this._balanceMode()) return this._sayBalance(await this._request("POST", "/v1/gift-cards/balance", { claim_code: code }));
        await this._ensureCart();
        if ((await this._sendTotal()) && acceptForfeit) return;
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
        const due = view.amount_due_cents;
        let said = fill(t.added, {
          code: card ? this._label(card) : "", amount: this._money(card?.covers_cents ?? card?.applied_cents ?? 0), due: this._money(due),
        });
        // Cents due only because cards pay whole dollars (docs/money.md): the service says how much.
        const cents = view.whole_dollar_due_cents;
        if (cents > 0) said += " " + fill(t.wholeDollars, { cents: this._money(cents) });
        this._say(said);
      } catch (err) {
        await this._fail(err, code);
      } finally {
        this._setBusy(false);
      }
    });
  }

  _sayBalance(answer) {
    const t = this._t();
    const values = { code: answer.code, amount: this._money(answer.balance_cents), redeemable: this._money(answer.redeemable_cents) };
    if (answer.status !== "redeemable") return this._say(t[REASONS[answer.status]] || t.notRedeemable, true);
    this._els.input.value = "";
    this._say(fill(answer.redeemable_cents < answer.balance_cents ? t.balanceSplit : t.balanceIs, values));
  }

  _remove(card, button) {
    // A second click while the first removal runs would remove nothing and report an error.
    if (this._removing.has(card.id)) return;
    this._removing.add(card.id);
    button.setAttribute("aria-disabled", "true");
    const label = this._label(card);
    return this._enqueue(async () => {
      try {
        let view;
        try {
          view = await this._request("DELETE", this._cartPath(`/gift-cards/${encodeURIComponent(card.id)}`));
        } catch (err) {
          // Already off the cart (another tab, an earlier click): what the shopper wanted has happened.
          if (err.code !== "gift_card_not_in_cart") throw err;
        }
        if (!view?.gift_cards) view = await this._request("GET", this._cartPath());
        this._show(view);
        this._say(fill(this._t().removed, { code: label, due: this._money(view.amount_due_cents) }));
      } catch (err) {
        await this._fail(err);
      } finally {
        this._removing.delete(card.id);
        button.removeAttribute("aria-disabled");
      }
      // The Remove button is gone; keep keyboard users in the widget.
      this._els.input.focus();
    });
  }

  async _fail(err, code) {
    if (err.code === "superseded") return this._say("");
    const t = this._t();
    const data = err.data || {};
    const seconds = parseInt(err.retry, 10) || data.retry_after || 60;
    let message;
    switch (err.code) {
      case "timeout":
      case "network":
        message = t[err.code];
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
        // The cart's lockout (too many unknown codes) or this device's request limit: different words.
        message = data.reason === "cart_locked"
          ? fill(t.locked, { minutes: Math.ceil(seconds / 60) })
          : fill(t.rateLimited, { seconds });
        break;
      case "provider_rate_limited":
        message = t.providerBusy;
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
        } else if (/^provider/.test(err.code)) {
          message = t.providerDown;
        } else {
          // The service writes its problem details for shoppers, in the language the widget asked for.
          message = data.detail || data.title || t.failed;
        }
    }
    this._hideConfirm();
    this._say(message, true);
    this._emit("error", { code: err.code, status: err.status, message, cart: this._detail() });
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
    // aria-disabled rather than disabled: a disabled button would drop keyboard focus. styles.css dims it.
    this._els.apply.setAttribute("aria-disabled", busy);
    this._els.yes.setAttribute("aria-disabled", busy);
    this._els.apply.parentNode.parentNode.setAttribute("aria-busy", busy);
  }

  _say(text, isError = false) {
    const { msg, input } = this._els;
    msg.textContent = text;
    msg.className = isError ? "m e" : "m";
    if (isError) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  _texts() {
    const t = this._t();
    const e = this._els;
    e.label.textContent = t.label;
    e.apply.textContent = this._balanceMode() ? t.check : t.apply;
    e.list.setAttribute("aria-label", t.cardsLabel);
    e.due.firstChild.textContent = t.due;
    this._render();
  }

  // The masked code, numbered when two applied cards end in the same four characters.
  _label(card) {
    const same = (this._view?.gift_cards || []).filter((c) => c.code === card.code);
    return same.length > 1 ? `${card.code} (${same.findIndex((c) => c.id === card.id) + 1})` : card.code;
  }

  _detail() {
    return this._view && { ...this._view, cart_token: this._token };
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
    this._emit("change", this._detail());
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
      const label = this._label(card);
      const remove = h("button", { type: "button", className: "s", textContent: t.remove });
      remove.setAttribute("part", "button remove-button");
      remove.setAttribute("aria-label", fill(t.removeLabel, { code: label }));
      remove.addEventListener("click", () => this._remove(card, remove));
      const item = h("li", {},
        h("b", { textContent: label }),
        h("span", { textContent: fill(t.balance, { amount: this._money(card.balance_cents) }) }),
        h("span", { textContent: fill(t.applied, { amount: this._money(card.covers_cents ?? card.applied_cents) }) }),
        remove,
        note ? h("small", { textContent: note }) : null);
      item.setAttribute("part", "card");
      return item;
    }));
    due.hidden = false;
    // Until the cart has the page's total (a total change still on its way, or failed) no amount is true.
    due.lastChild.textContent = view.total_cents === this._total() ? this._money(view.amount_due_cents) : "…";
  }
}

if (!customElements.get("instagift-claim-code")) customElements.define("instagift-claim-code", InstagiftClaimCode);
