"""Every merchant endpoint wants the admin token: none, the shop token or a wrong one get 401 problems."""

import pytest

from tests.support import ADMIN, SHOP

MERCHANT_ROUTES = [
    ("get", "/v1/orders/1001"),
    ("get", "/v1/redemptions"),
    ("get", "/v1/reconciliation"),
    ("get", "/v1/reconciliation/instagift"),
    ("get", "/v1/jobs"),
    ("post", "/v1/jobs/1/retry"),
    ("get", "/v1/providers/check"),
]


@pytest.mark.parametrize(("method", "path"), MERCHANT_ROUTES)
@pytest.mark.parametrize("headers", [{}, SHOP, {"Authorization": "Bearer wrong-token"},
                                     {"Authorization": "dev-admin-token"}, {"Authorization": "Basic dev-admin-token"}],
                         ids=["none", "shop", "wrong", "no-scheme", "basic"])
def test_merchant_routes_refuse_anything_but_the_admin_token(client, method, path, headers):
    response = getattr(client, method)(path, headers=headers)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="admin"'


@pytest.mark.parametrize(("method", "path"), MERCHANT_ROUTES)
def test_admin_token_gets_past_authentication(client, method, path):
    response = getattr(client, method)(path, headers=ADMIN)
    assert response.status_code != 401
