"""Benchmark: Instagift calls per split redemption and per uncertain settlement, against the merchant's history.

The sandbox (under gunicorn, oldest first, its default) is seeded with 100, 1,000 and 10,000 certificates and half
as many redemptions; then orders are redeemed through the real service (cart, apply, signed order webhook, the
redemption job run by the worker code, a fresh PostgreSQL database). A split looks its child up in Instagift's
certificate list; an uncertain redemption (the sandbox applies it, then answers 500) is settled on the next run by
reading the certificate back and finding Instagift's redemption in its list (and, as it split, the child in the
certificate list). The sandbox counts every call by endpoint. Target: flat, at most 3 list calls for each read-back.
Run: .venv/bin/python -m bench.provider_calls [--orders 5] [--sizes 100,1000,10000]
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import timedelta

import requests

from bench.common import fresh_postgres_database, gunicorn, migrate
from service import create_app
from service.db import utcnow
from service.jobs.worker import Worker
from tests.support import order_completed, signed_webhook


class _LongestBackoff(random.Random):
    """Retry delays at their ceiling: a job that failed is not retried inside the drain that failed it."""

    def uniform(self, a: float, b: float) -> float:
        return b


def drain(app, **options) -> None:
    Worker(app, threads=0, rng=_LongestBackoff(), **options).drain()


def counted(control: str) -> dict[str, int]:
    """The sandbox's call counts since the last look (they are reset with it)."""
    return requests.get(f"{control}/calls", timeout=10).json()["calls"]


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before) if after.get(k, 0) - before.get(k, 0)}


def place_order(client, control: str, order_id: str) -> None:
    """A $30 order paid from a fresh splittable $100 certificate: the redemption splits it."""
    code = requests.post(f"{control}/certificates", json={"face_value_cents": 10000}, timeout=10).json()["claim_code"]
    token = client.post("/v1/carts", json={"total_cents": 3000}).get_json()["cart_token"]
    applied = client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code})
    assert applied.status_code == 200, applied.get_json()
    raw, headers = signed_webhook(order_completed(order_id, cart_token=token, total_cents=3000, gift_card_cents=3000))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202


def per_order(totals: dict[str, int], orders: int) -> dict[str, float]:
    return {kind: round(n / orders, 2) for kind, n in sorted(totals.items())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=5, help="redemptions measured per history size and case")
    parser.add_argument("--sizes", default="100,1000,10000", help="certificates in the history (redemptions: half)")
    args = parser.parse_args()
    results = []
    sandbox_env = {"SERVICE_ENV": "development"}
    with gunicorn("sandbox:create_sandbox_app()", sandbox_env, workers=1, threads=4,
                  health_path="/_health") as sandbox_url, fresh_postgres_database("bench_calls") as db_url:
        migrate(db_url)
        control = f"{sandbox_url}/instagift/v2/_control"
        app = create_app({"DATABASE_URL": db_url, "SANDBOX_URL": sandbox_url, "SERVICE_ENV": "development",
                          "LOOKUP_RATE_LIMIT": "100000/minute", "CART_CREATE_RATE_LIMIT": "100000/minute",
                          "LOG_FORMAT": "json"})
        client = app.test_client()
        order_number = 0
        for size in (int(s) for s in args.sizes.split(",")):
            requests.post(f"{control}/reset", timeout=30).raise_for_status()
            seeded = requests.post(f"{control}/history", json={"certificates": size, "redemptions": size // 2},
                                   timeout=120)
            seeded.raise_for_status()

            split: dict[str, int] = {}
            for _ in range(args.orders):
                order_number += 1
                place_order(client, control, f"b{order_number}")
                before = counted(control)
                drain(app)
                for kind, n in delta(counted(control), before).items():
                    split[kind] = split.get(kind, 0) + n

            settle: dict[str, int] = {}
            for _ in range(args.orders):
                order_number += 1
                place_order(client, control, f"b{order_number}")
                requests.post(f"{control}/faults", json={"endpoint_kind": "redeem_certificate",
                                                          "mode": "apply_then_500"}, timeout=10).raise_for_status()
                drain(app)  # the redemption happens, the answer is a 500: outcome unknown
                before = counted(control)
                drain(app, clock=lambda: utcnow() + timedelta(minutes=30))  # the settling run
                for kind, n in delta(counted(control), before).items():
                    settle[kind] = settle.get(kind, 0) + n

            results.append({
                "history": {"certificates": size, "redemptions": size // 2},
                "sandbox_totals": seeded.json(),
                "split": {"calls_per_redemption": per_order(split, args.orders),
                          "certificate_list_calls": round(split.get("list_certificates", 0) / args.orders, 2)},
                "uncertain_settlement": {
                    "calls_per_settlement": per_order(settle, args.orders),
                    "redemption_list_calls": round(settle.get("list_redemptions", 0) / args.orders, 2),
                    "certificate_list_calls_for_the_child": round(settle.get("list_certificates", 0) / args.orders, 2),
                },
            })
    print(json.dumps({"orders_per_case": args.orders, "target_list_calls_max": 3, "results": results}, indent=2))


if __name__ == "__main__":
    main()
