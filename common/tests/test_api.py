"""Cross-cutting API contract: the token endpoint and the OpenAPI schema and docs."""

import json

import pytest
from django.core.management import call_command
from knox.models import AuthToken

from common.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"

# The paths of the design's HTTP contract that exist so far (more are allowed).
CONTRACT_PATHS = {
    "/api/v1/auth/token/",
    "/api/v1/products/",
    "/api/v1/products/{sku}/",
    "/api/v1/cart/",
    "/api/v1/cart/items/",
    "/api/v1/cart/items/{line_id}/",
    "/api/v1/checkout/",
    "/api/v1/orders/",
    "/api/v1/orders/{order_id}/",
    "/api/v1/orders/{order_id}/invoice/",
    "/api/v1/invoices/",
    "/api/v1/invoices/{invoice_id}/",
}


def test_token_for_good_credentials_authenticates_later_requests(api_client):
    UserFactory(username="ada")

    response = api_client.post(TOKEN, {"username": "ada", "password": "pass-word-123"}, format="json")

    assert response.status_code == 200
    assert set(response.json()) == {"token", "expiry"}
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert api_client.get("/api/v1/orders/").status_code == 200
    again = api_client.post(TOKEN, {"username": "ada", "password": "pass-word-123"}, format="json")
    assert again.json()["token"] != response.json()["token"]  # one token per sign-in (per device)


@pytest.mark.parametrize(
    ("username", "password", "active"),
    [("ada", "wrong", True), ("nobody", "pass-word-123", True), ("ada", "pass-word-123", False)],
)
def test_token_for_bad_credentials_is_401_and_issues_nothing(api_client, username, password, active):
    UserFactory(username="ada", is_active=active)

    response = api_client.post(TOKEN, {"username": username, "password": password}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert AuthToken.objects.count() == 0


def test_token_request_without_fields_is_400(api_client):
    response = api_client.post(TOKEN, {}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert set(response.json()["error"]["details"]) == {"username", "password"}


def test_schema_is_openapi_3_and_covers_the_contract(api_client):
    response = api_client.get("/api/v1/schema/?format=json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) >= CONTRACT_PATHS
    checkout = schema["paths"]["/api/v1/checkout/"]["post"]
    assert {
        k: v for p in checkout["parameters"] if p["name"] == "Idempotency-Key" for k, v in p.items()
        if k in ("name", "in", "required")
    } == {"name": "Idempotency-Key", "in": "header", "required": True}  # fmt: skip


def test_schema_generates_without_warnings_and_validates(tmp_path):
    target = tmp_path / "schema.yml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    assert target.read_text().startswith("openapi: 3.")


def test_docs_page_is_served_locally_without_a_cdn(api_client):
    response = api_client.get("/api/v1/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn.jsdelivr.net" not in html
    assert "unpkg.com" not in html
