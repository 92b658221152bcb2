"""Helpers shared by tests: signing webhooks as a shop would, serving WSGI apps over real HTTP."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook
from werkzeug.serving import make_server

from service.config import DEV_WEBHOOK_SECRET

ADMIN = {"Authorization": "Bearer dev-admin-token"}
SHOP = {"Authorization": "Bearer dev-shop-token"}


def signed_webhook(body: dict[str, Any] | bytes | str, *, secret: str = DEV_WEBHOOK_SECRET,
                   msg_id: str | None = None, timestamp: float | None = None) -> tuple[bytes, dict[str, str]]:
    """Body bytes and Standard Webhooks headers, signed the way a shop backend signs them."""
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = datetime.fromtimestamp(timestamp if timestamp is not None else time.time(), UTC)
    signature = Webhook(secret).sign(msg_id, ts, raw.decode())
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(ts.timestamp())),
               "webhook-signature": signature, "Content-Type": "application/json"}
    return raw, headers


def order_completed(order_id: str = "1001", **data_overrides: Any) -> dict[str, Any]:
    """An `order.completed` event body as a shop sends it (the order webhook of docs/api.md and /openapi.json)."""
    data: dict[str, Any] = {
        "id": order_id, "number": f"#{order_id}", "cart_token": None, "currency": "USD",
        "total_cents": 5250, "gift_card_cents": 0,
        "customer": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
                     "accepts_mail": True},
        "shipping_address": {"name": "Ada Lovelace", "company": None, "address1": "10 Main St",
                             "address2": None, "city": "Springfield", "region": "IL", "postcode": "62701",
                             "country": "US"},
        "line_items": [{"sku": "TEE-1", "title": "T-shirt", "quantity": 1, "unit_price_cents": 5250}],
        "placed_at": "2026-11-21T09:59:58Z",
    }
    data.update(data_overrides)
    return {"type": "order.completed", "timestamp": "2026-11-21T10:00:00Z", "data": data}


def order_paid_with_gift_card(client, instagift, order_id: str, *, balance: int = 10000,
                              total: int = 3000) -> tuple[str, str]:
    """A cart holding one new (splittable) certificate of `balance`, completed as `order_id` with the gift card
    covering what it could (202); the certificate's id and its claim code."""
    certificate_id, code = instagift.add_certificate(balance)
    token = client.post("/v1/carts", json={"total_cents": total}).get_json()["cart_token"]
    applied = client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code})
    assert applied.status_code == 200, applied.get_json()
    raw, headers = signed_webhook(order_completed(order_id, cart_token=token, total_cents=total,
                                                  gift_card_cents=applied.get_json()["covered_cents"]))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202
    return certificate_id, code


def cancel_order(client, order_id: str = "1001") -> None:
    """The shop cancels the order: a signed `order.cancelled` through the service's webhook endpoint (202)."""
    raw, headers = signed_webhook({"type": "order.cancelled", "timestamp": "2026-11-21T10:05:00Z",
                                   "data": {"id": order_id}})
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202


class Background:
    """`run_jobs` in another thread, as a worker process would run it while the shop cancels the order."""

    def __init__(self, run_jobs, **options):
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(run_jobs, options), daemon=True)
        self.thread.start()

    def _run(self, run_jobs, options):
        try:
            run_jobs(**options)
        except BaseException as exc:  # re-raised in the test's thread by finish()
            self.error = exc

    def finish(self):
        self.thread.join(30)
        assert not self.thread.is_alive(), "the worker did not finish"
        if self.error is not None:
            raise self.error


def cancel_while_held(client, run_jobs, held, order_id="1001", *, answer_lost=True, **worker_options):
    """Run the worker until it is blocked in a call a sandbox holds (`held`), cancel the order with a signed
    webhook, then lose the answer (the client's read timeout passes first) or deliver it."""
    worker = Background(run_jobs, **worker_options)
    try:
        assert held.reached.wait(30), "the worker never made the held call"
        cancel_order(client, order_id)
        assert worker.thread.is_alive(), "the worker's call ended before the cancellation was accepted"
        if answer_lost:
            worker.finish()  # the client's read timeout: it gives up on the answer
    finally:
        held.release.set()
    worker.finish()


class ServerThread:
    """A WSGI app served over real HTTP on a free loopback port, in a background thread."""

    def __init__(self, app, host: str = "127.0.0.1"):
        self.server = make_server(host, 0, app, threaded=True)
        self.url = f"http://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.thread.join()


def order_attention(app, shop_order_id: str | None = None) -> str | None:
    """The order's attention items as one text, "[kind] message" each, oldest first; None when it has none.
    Without `shop_order_id`, the only order's."""
    import sqlalchemy as sa

    from service.db import db
    from service.orders.models import Order, OrderAttentionItem

    with app.app_context():
        stmt = sa.select(OrderAttentionItem.kind, OrderAttentionItem.message).join(Order).order_by(
            OrderAttentionItem.id)
        if shop_order_id is not None:
            stmt = stmt.where(Order.shop_order_id == shop_order_id)
        notes = [f"[{kind}] {message}" for kind, message in db.session.execute(stmt)]
    return " ".join(notes) or None


class DiesOnceAt:
    """A provider client, except that the worker dies (an unexpected error, retried later) the first time `method`
    is called; every other call goes through."""

    def __init__(self, real, method: str) -> None:
        self._real, self._method, self.died = real, method, False

    def __getattr__(self, name):
        attribute = getattr(self._real, name)
        if name != self._method or self.died:
            return attribute

        def call(*args, **kwargs):
            self.died = True
            raise RuntimeError(f"the worker died while calling {name}")

        return call
