from tests.support import order_completed, signed_webhook


def test_webhook_smoke(client):
    raw, headers = signed_webhook(order_completed())
    r = client.post("/v1/webhooks/orders", data=raw, headers=headers)
    assert r.status_code == 202, r.get_json()
    r = client.post("/v1/webhooks/orders", data=raw, headers=headers)
    assert r.status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/readyz").get_json()["database"] == "ok"
    r = client.get("/nope")
    assert r.status_code == 404 and r.mimetype == "application/problem+json"
