"""The floor for `bench.checkout_overhead --app floor`: the same URLs as the service, doing the least possible.

Balance is one Instagift call; apply is one Instagift call and one durable PostgreSQL write (INSERT + COMMIT on a
connection kept per thread). No ORM, schemas, limits, checks, logging or second transaction. Whatever overhead this
app shows on a machine, no implementation of the real endpoints on the same stack can beat there.
"""

from __future__ import annotations

import os
import secrets
import threading

import psycopg
import requests
from flask import Flask, jsonify, request

MERCHANT = {"X-Merchant-Key": "sandbox-merchant-key", "X-Merchant-Secret": "sandbox-merchant-secret"}


def create_app() -> Flask:
    """The floor app; needs SANDBOX_URL and a PostgreSQL DATABASE_URL."""
    app = Flask("floor")
    instagift = os.environ["SANDBOX_URL"].rstrip("/") + "/instagift/v2"
    database_url = os.environ["DATABASE_URL"]
    http = requests.Session()
    http.trust_env = False
    local = threading.local()

    def connection() -> psycopg.Connection:
        if getattr(local, "connection", None) is None:
            local.connection = psycopg.connect(database_url)
            local.connection.execute("CREATE TABLE IF NOT EXISTS floor_holds "
                                     "(id bigserial PRIMARY KEY, cart text NOT NULL, code text UNIQUE)")
            local.connection.commit()
        return local.connection

    def certificate(code: str) -> dict:
        return http.get(f"{instagift}/claim_codes/{code}", headers=MERCHANT, timeout=10).json()

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.post("/v1/carts")
    def create_cart():
        return jsonify(cart_token=secrets.token_urlsafe(24)), 201

    @app.post("/v1/gift-cards/balance")
    def balance():
        return jsonify(certificate(request.get_json()["claim_code"]))

    @app.post("/v1/carts/<token>/gift-cards")
    def apply(token: str):
        code = request.get_json()["claim_code"]
        found = certificate(code)
        db = connection()
        db.execute("INSERT INTO floor_holds (cart, code) VALUES (%s, %s)", (token, code))
        db.commit()
        return jsonify(cart_token=token, certificate=found)

    return app
