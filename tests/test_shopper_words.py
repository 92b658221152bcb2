"""What a shopper reads: every problem the widget can receive has words in English and Spanish (the language picked
from Accept-Language, said in Content-Language), provider trouble and each limit have their own words, technical
detail stays in the log under the problem's request_id, and the Spanish catalog covers every marked message."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "service" / "translations"
LANGUAGES = ("en", "es")
TECHNICAL = ("instagift:", "claim_codes", "answered", "HTTP", "timed out", "Traceback", "request id ")


@pytest.fixture
def environ(environ):
    # Room for every scenario's look-ups; the limits themselves are tested below with their defaults.
    return {**environ, "LOOKUP_RATE_LIMIT": "1000/minute", "CART_CREATE_RATE_LIMIT": "1000/minute",
            "INSTAGIFT_TIMEOUT_SECONDS": "1"}


def said(language: str) -> dict:
    return {"headers": {"Accept-Language": language}}


def new_cart(client, total_cents: int = 5000) -> str:
    return client.post("/v1/carts", json={"total_cents": total_cents}).get_json()["cart_token"]


def apply(client, token: str, code: str, language: str = "en"):
    return client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code}, **said(language))


# -- every shopper-facing problem, in both languages ----------------------------------------------------------


def _fresh_card(instagift, cents: int = 2000, **kwargs) -> str:
    return instagift.add_certificate(cents, **kwargs)[1]


def _in_use(client, instagift, language):
    code = _fresh_card(instagift)
    assert apply(client, new_cart(client), code).status_code == 200
    return apply(client, new_cart(client), code, language)


def _already_applied(client, instagift, language):
    token, code = new_cart(client), _fresh_card(instagift)
    assert apply(client, token, code).status_code == 200
    return apply(client, token, code, language)


def _nothing_due(client, instagift, language):
    token = new_cart(client, 7450)
    assert apply(client, token, _fresh_card(instagift, 10000)).status_code == 200
    return apply(client, token, _fresh_card(instagift), language)


def _too_many_cards(client, instagift, language):
    token = new_cart(client, 100_000)
    for _ in range(20):
        assert apply(client, token, _fresh_card(instagift, 100)).status_code == 200
    return apply(client, token, _fresh_card(instagift, 100), language)


def _not_in_cart(client, instagift, language):
    return client.delete(f"/v1/carts/{new_cart(client)}/gift-cards/999", **said(language))


def _currency_changed(client, instagift, language):
    return client.put(f"/v1/carts/{new_cart(client)}", json={"total_cents": 100, "currency": "EUR"}, **said(language))


def _provider(mode: str, **fault):
    def scenario(client, instagift, language):
        instagift.inject_fault("fetch_claim_code", mode, **fault)
        return apply(client, new_cart(client), "DEMO-100S-PLIT", language)
    return scenario


SCENARIOS = {
    "cart_not_found": lambda c, i, lang: c.get("/v1/carts/no-such-cart", **said(lang)),
    "gift_card_not_found (balance)": lambda c, i, lang: c.post("/v1/gift-cards/balance",
                                                               json={"claim_code": "ZZZZ-ZZZZ-ZZZZZZ"}, **said(lang)),
    "gift_card_not_found (malformed)": lambda c, i, lang: apply(c, new_cart(c), "bad!", lang),
    "gift_card_not_redeemable redeemed": lambda c, i, lang: apply(c, new_cart(c), "DEMO-USED-0001", lang),
    "gift_card_not_redeemable expired": lambda c, i, lang: apply(c, new_cart(c), "DEMO-EXPD-0001", lang),
    "gift_card_not_redeemable cancelled": lambda c, i, lang: apply(c, new_cart(c), "DEMO-CANC-0001", lang),
    "gift_card_not_redeemable pending": lambda c, i, lang: apply(c, new_cart(c), "DEMO-PEND-0001", lang),
    "gift_card_not_redeemable returned": lambda c, i, lang: apply(c, new_cart(c), "DEMO-RETN-0001", lang),
    "gift_card_currency_not_supported": lambda c, i, lang: apply(c, new_cart(c), "DEMO-CAD0-0050", lang),
    "gift_card_empty": lambda c, i, lang: apply(c, new_cart(c), "DEMO-0050-CENT", lang),
    "forfeit_not_accepted": lambda c, i, lang: apply(c, new_cart(c), _fresh_card(i, 8000, splittable=False), lang),
    "gift_card_in_use": _in_use,
    "gift_card_already_applied": _already_applied,
    "nothing_due": _nothing_due,
    "too_many_gift_cards": _too_many_cards,
    "gift_card_not_in_cart": _not_in_cart,
    "currency_not_supported (new cart)": lambda c, i, lang: c.post(
        "/v1/carts", json={"total_cents": 100, "currency": "EUR"}, **said(lang)),
    "currency_not_supported (changed)": _currency_changed,
    "validation_failed": lambda c, i, lang: c.post("/v1/carts", json={"total_cents": -1}, **said(lang)),
    "malformed_json": lambda c, i, lang: c.post("/v1/carts", data="{", content_type="application/json",
                                                **said(lang)),
    "unsupported_media_type": lambda c, i, lang: c.post("/v1/carts", data="x", content_type="text/plain",
                                                        **said(lang)),
    "payload_too_large": lambda c, i, lang: c.post("/v1/carts", data="[" + " " * 70_000 + "]",
                                                   content_type="application/json", **said(lang)),
    "not_found": lambda c, i, lang: c.get("/v1/gift-cards/nothing-here", **said(lang)),
    "method_not_allowed": lambda c, i, lang: c.patch("/v1/carts", json={}, **said(lang)),
    "bad_request": lambda c, i, lang: c.get("/v1/carts/x?a=%00", **said(lang)),
    "provider_unavailable (5xx)": _provider("error_500"),
    "provider_unavailable (timeout)": _provider("timeout", delay_seconds=3),
    "provider_rate_limited": _provider("rate_limit", retry_after_seconds=30),
    "provider_rejected": _provider("reject_400", details="Unable to look this up"),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_shopper_problem_has_its_words_in_english_and_in_spanish(client, instagift, scenario):
    answers = {}
    for language in LANGUAGES:
        response = SCENARIOS[scenario](client, instagift, language)
        assert response.status_code >= 400 and response.mimetype == "application/problem+json"
        assert response.headers["Content-Language"] == language
        answers[language] = response.get_json()
    english, spanish = answers["en"], answers["es"]
    assert english["code"] == spanish["code"] and english["type"] == spanish["type"]  # stable for programs
    assert scenario.split(" ")[0] == english["code"]
    assert english["detail"] != spanish["detail"] and english["title"] != spanish["title"]
    for body in (english, spanish):
        assert body["request_id"]
        assert not [word for word in TECHNICAL if word in body["detail"]], body["detail"]


def test_the_spanish_words_are_the_catalogs(client):
    response = client.post("/v1/gift-cards/balance", json={"claim_code": "ZZZZ-ZZZZ-ZZZZZZ"},
                           headers={"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"})
    body = response.get_json()
    assert response.headers["Content-Language"] == "es"
    assert body["title"] == "Tarjeta regalo no encontrada"
    assert body["detail"] == ("No encontramos ninguna tarjeta regalo con ese código de canje. Revísalo e inténtalo "
                              "de nuevo.")


def test_amounts_are_written_the_way_each_language_writes_them(client, instagift):
    details = {language: _nothing_due(client, instagift, language).get_json()["detail"] for language in LANGUAGES}
    assert "$0.50" in details["en"]
    assert "0,50\xa0US$" in details["es"]


# -- which language --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("accept_language", "language"), [
    (None, "en"), ("es", "es"), ("es-419", "es"), ("ES-es", "es"), ("fr-FR, es;q=0.8, en;q=0.5", "es"),
    ("en-GB,es;q=0.9", "en"), ("fr", "en"), ("*", "en"), ("de, fr;q=0.5", "en"), ("es;q=0, en", "en"),
])
def test_the_language_is_the_best_supported_match_of_accept_language(client, accept_language, language):
    headers = {"Accept-Language": accept_language} if accept_language else {}
    response = client.get("/v1/carts/no-such-cart", headers=headers)
    assert response.headers["Content-Language"] == language
    assert "Accept-Language" in response.headers["Vary"]


def test_merchant_and_shop_backend_answers_stay_english_and_say_so(client):
    for response in (client.get("/v1/orders/1001", headers={"Accept-Language": "es"}),
                     client.post("/v1/carts/nope/verify", headers={"Accept-Language": "es"})):
        assert response.status_code == 401
        assert response.headers["Content-Language"] == "en"
        assert response.get_json()["title"] == "Authentication required"


def test_answers_without_words_carry_no_content_language(client):
    response = client.post("/v1/carts", json={"total_cents": 5000}, headers={"Accept-Language": "es"})
    assert response.status_code == 201 and "Content-Language" not in response.headers
    assert "Accept-Language" in response.headers["Vary"]


# -- provider trouble and limits, each in its own words -------------------------------------------------------


def test_instagifts_429_our_429s_and_instagift_down_each_say_something_different(environ, request):
    environ.update({"LOOKUP_RATE_LIMIT": "3/minute"})
    client, instagift = request.getfixturevalue("client"), request.getfixturevalue("instagift")
    instagift.inject_fault("fetch_claim_code", "rate_limit", retry_after_seconds=30)
    busy = apply(client, new_cart(client), "DEMO-100S-PLIT")
    instagift.inject_fault("fetch_claim_code", "error_500")
    down = apply(client, new_cart(client), "DEMO-100S-PLIT")
    assert apply(client, new_cart(client), "DEMO-100S-PLIT").status_code == 200
    ours = apply(client, new_cart(client), "DEMO-050S-PLIT")

    assert (busy.status_code, busy.get_json()["code"]) == (503, "provider_rate_limited")
    assert busy.headers["Retry-After"] == "30" and busy.get_json()["retry_after"] == 30
    assert "busy" in busy.get_json()["detail"] and "not a problem with your card" in busy.get_json()["detail"]
    assert "30 seconds" in busy.get_json()["detail"]
    assert (down.status_code, down.get_json()["code"]) == (503, "provider_unavailable")
    assert "couldn't reach the gift card service" in down.get_json()["detail"]
    assert (ours.status_code, ours.get_json()["code"]) == (429, "rate_limited")
    assert ours.get_json()["reason"] == "too_many_lookups"
    assert "from your connection" in ours.get_json()["detail"]
    details = {busy.get_json()["detail"], down.get_json()["detail"], ours.get_json()["detail"]}
    assert len(details) == 3
    for response in (busy, down, ours):
        assert "pay another way" in response.get_json()["detail"]


def test_the_technical_detail_is_logged_under_the_problems_request_id(client, instagift, caplog):
    instagift.inject_fault("fetch_claim_code", "error_500")
    with caplog.at_level(logging.INFO):
        response = apply(client, new_cart(client), "DEMO-100S-PLIT")
    body = response.get_json()
    assert body["code"] == "provider_unavailable" and body["request_id"] == response.headers["X-Request-Id"]
    [line] = [r for r in caplog.records if r.name == "service.web" and "provider_unavailable" in r.getMessage()]
    assert line.request_id == body["request_id"]
    assert "instagift: GET claim_codes/••••" in line.getMessage() and "500" in line.getMessage()
    assert "DEMO-100S-PLIT" not in line.getMessage()


def test_too_many_carts_has_its_own_reason_and_words(environ, request):
    environ["CART_CREATE_RATE_LIMIT"] = "1/minute"
    client = request.getfixturevalue("client")
    new_cart(client)
    for language, words in (("en", "Too many checkouts were started"), ("es", "Se iniciaron demasiados pagos")):
        refused = client.post("/v1/carts", json={"total_cents": 100}, **said(language))
        body = refused.get_json()
        assert (refused.status_code, body["code"], body["reason"]) == (429, "rate_limited", "too_many_carts")
        assert body["retry_after"] == int(refused.headers["Retry-After"]) and words in body["detail"]


def test_a_balance_check_page_on_the_storefronts_origin_gets_cors_words_and_the_per_client_limit(environ, request):
    """mode="balance" of the widget: the balance endpoint alone, from the storefront's origin, in Spanish."""
    environ["LOOKUP_RATE_LIMIT"] = "2/minute"
    client = request.getfixturevalue("client")
    request.getfixturevalue("instagift")
    origin = "http://127.0.0.1:5000"
    preflight = client.options("/v1/gift-cards/balance", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, accept-language"})
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    assert "content-type" in preflight.headers["Access-Control-Allow-Headers"].lower()
    headers = {"Origin": origin, "Accept-Language": "es"}
    found = client.post("/v1/gift-cards/balance", json={"claim_code": "DEMO-7550-CENT"}, headers=headers)
    assert found.status_code == 200 and found.headers["Access-Control-Allow-Origin"] == origin
    assert found.get_json()["redeemable_cents"] == 7500
    unknown = client.post("/v1/gift-cards/balance", json={"claim_code": "ZZZZ-ZZZZ-ZZZZZZ"}, headers=headers)
    assert unknown.headers["Content-Language"] == "es" and unknown.headers["Access-Control-Allow-Origin"] == origin
    limited = client.post("/v1/gift-cards/balance", json={"claim_code": "DEMO-100S-PLIT"}, headers=headers)
    body = limited.get_json()
    assert (limited.status_code, body["reason"]) == (429, "too_many_lookups")
    assert "Retry-After" in limited.headers["Access-Control-Expose-Headers"]
    assert "desde tu conexión" in body["detail"]


# -- the catalogs ---------------------------------------------------------------------------------------------


def marked_messages() -> set[str]:
    """Every message the service's code marks for translation, found the way `scripts/translations update` does."""
    with open(ROOT / "babel.cfg") as config:
        method_map, options_map = parse_mapping_cfg(config)
    keywords = {**DEFAULT_KEYWORDS, "lazy_gettext": None}
    return {message for _file, _line, message, _comments, _context in
            extract_from_dir(str(ROOT / "service"), method_map, options_map, keywords=keywords)}


def test_every_marked_message_has_a_spanish_translation_in_the_catalog_and_the_compiled_file():
    messages = marked_messages()
    assert "We couldn't find a gift card with that claim code. Check it and try again." in messages
    with open(TRANSLATIONS / "es" / "LC_MESSAGES" / "messages.po", "rb") as po:
        catalog = read_po(po)
    with open(TRANSLATIONS / "es" / "LC_MESSAGES" / "messages.mo", "rb") as mo:
        compiled = read_mo(mo)
    untranslated = [m for m in messages if not catalog.get(m) or not catalog.get(m).string or catalog.get(m).fuzzy]
    assert not untranslated, "translate these in messages.po, then scripts/translations compile: " + repr(untranslated)
    stale = [m for m in messages if not compiled.get(m) or compiled.get(m).string != catalog.get(m).string]
    assert not stale, "run scripts/translations compile and commit messages.mo: " + repr(stale)
    problems = [(message.id, errors) for message, errors in catalog.check() if errors]
    assert not problems, problems  # placeholders such as %(wait)s kept in every translation


# -- whole dollars, as a fact the widget explains ---------------------------------------------------------------


def test_the_apply_answer_says_which_cents_are_due_only_because_cards_pay_whole_dollars(client, instagift):
    token = new_cart(client, 7450)
    applied = apply(client, token, "DEMO-100S-PLIT").get_json()
    assert (applied["amount_due_cents"], applied["whole_dollar_due_cents"]) == (50, 50)
    token = new_cart(client, 7450)
    smaller = apply(client, token, "DEMO-050S-PLIT").get_json()
    assert (smaller["amount_due_cents"], smaller["whole_dollar_due_cents"]) == (2450, 0)
    # The cart view says the same afterwards, and after a total change.
    assert client.get(f"/v1/carts/{token}").get_json()["whole_dollar_due_cents"] == 0
    changed = client.put(f"/v1/carts/{token}", json={"total_cents": 4950}).get_json()
    assert (changed["amount_due_cents"], changed["whole_dollar_due_cents"]) == (50, 50)


def test_rounding_up_leaves_nothing_to_explain(environ, request):
    environ["GIFT_CARD_ROUNDING"] = "up"
    client = request.getfixturevalue("client")
    request.getfixturevalue("instagift")
    applied = apply(client, new_cart(client, 7450), "DEMO-100S-PLIT").get_json()
    assert (applied["amount_due_cents"], applied["whole_dollar_due_cents"]) == (0, 0)
