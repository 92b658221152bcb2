"""GET /v1/orders: newest first, paginated, searched by order id or a claim code's last 4, filtered by state and by
attention items."""

from __future__ import annotations

import pytest

from tests.support import ADMIN, cancel_order, order_completed, order_paid_with_gift_card, signed_webhook


def complete(client, order_id: str, **data) -> None:
    raw, headers = signed_webhook(order_completed(order_id, **data))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202


def listed(client, **query) -> dict:
    answer = client.get("/v1/orders", query_string=query, headers=ADMIN)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def ids(page: dict) -> list[str]:
    return [row["id"] for row in page["items"]]


def test_newest_first_in_pages(app, client):
    for n in range(1, 6):
        complete(client, f"A-{n}")

    first = listed(client, per_page=2)
    second = listed(client, per_page=2, page=2)
    last = listed(client, per_page=2, page=3)

    assert (ids(first), ids(second), ids(last)) == (["A-5", "A-4"], ["A-3", "A-2"], ["A-1"])
    assert (first["total"], first["next_page"], last["next_page"]) == (5, 2, None)
    row = first["items"][0]
    assert (row["state"], row["total_cents"], row["currency"], row["open_attention"], row["gift_cards"]) == (
        "completed", 5250, "USD", 0, [])


def test_q_matches_the_order_id_exactly_or_by_its_beginning(app, client):
    for order_id in ("SHOP-100", "SHOP-1001", "OTHER-100", "50%_off"):
        complete(client, order_id)

    assert ids(listed(client, q="SHOP-100")) == ["SHOP-1001", "SHOP-100"]
    assert ids(listed(client, q="SHOP-1001")) == ["SHOP-1001"]
    assert ids(listed(client, q="100")) == []  # not the middle of an id
    assert ids(listed(client, q="50%_")) == ["50%_off"]
    assert ids(listed(client, q="5_")) == []  # % and _ are characters, not wildcards


def test_q_finds_an_order_by_the_last_4_of_a_claim_code_used_on_it(app, client, instagift, run_jobs):
    _, code = order_paid_with_gift_card(client, instagift, "G-1")
    order_paid_with_gift_card(client, instagift, "G-2")
    complete(client, "G-3")
    run_jobs()
    last4 = code.replace("-", "")[-4:]

    for q in (last4, last4.lower(), f"••••{last4}"):
        page = listed(client, q=q)
        assert ids(page) == ["G-1"], q
    [row] = listed(client, q=last4)["items"]
    assert row["gift_cards"] == [f"••••{last4}"]
    assert code not in client.get("/v1/orders", headers=ADMIN).get_data(as_text=True)


def test_state_and_attention_filters(app, client, instagift, run_jobs):
    complete(client, "S-1")
    order_paid_with_gift_card(client, instagift, "S-2")
    order_paid_with_gift_card(client, instagift, "S-3")
    run_jobs()
    cancel_order(client, "S-2")  # redeemed (and a thank-you card placed), then cancelled: things to do by hand
    cancel_order(client, "S-3")
    complete(client, "S-4")
    cancel_order(client, "S-4")  # cancelled before anything was redeemed or sent: nothing to do
    timeline = client.get("/v1/orders/S-3", headers=ADMIN).get_json()
    for item in timeline["attention"]:
        url = f"/v1/orders/S-3/attention/{item['id']}/resolve"
        assert client.post(url, json={"note": "refunded"}, headers=ADMIN).status_code == 200

    assert ids(listed(client, state="cancelled")) == ["S-4", "S-3", "S-2"]
    assert ids(listed(client, state="completed")) == ["S-1"]
    open_page = listed(client, attention="open")
    assert ids(open_page) == ["S-2"] and open_page["items"][0]["open_attention"] >= 1
    resolved = listed(client, attention="resolved")
    assert ids(resolved) == ["S-3"]
    assert resolved["items"][0]["open_attention"] == 0 and resolved["items"][0]["resolved_attention"] >= 1
    assert ids(listed(client, attention="open", state="completed")) == []
    assert ids(listed(client, attention="open", q="S-")) == ["S-2"]


@pytest.mark.parametrize("query", [
    {"state": "shipped"}, {"attention": "yes"}, {"per_page": "0"}, {"per_page": "501"}, {"page": "0"},
    {"q": "x" * 101}, {"q": ""}, {"sort": "id"},
])
def test_bad_queries_are_422_problems(client, query):
    answer = client.get("/v1/orders", query_string=query, headers=ADMIN)
    assert answer.status_code == 422 and answer.get_json()["code"] == "validation_failed"


def test_the_list_needs_the_admin_token(client):
    answer = client.get("/v1/orders")
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == 'Bearer realm="admin"'
