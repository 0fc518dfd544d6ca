"""Every API route has an explicit access decision, and the decisions hold.

The table below is the API's access policy. A new route under /api/v1/ that is not in it
fails `test_every_api_route_has_an_access_decision`: whoever adds an endpoint decides who
may call it, here. Decisions:

- PUBLIC: anonymous callers are served by design (catalog, schema, docs, token, webhooks);
- CUSTOMER: any signed-in user; anonymous -> 401; data is scoped to the caller;
- OWNER: a signed-in user's own object; anonymous -> 401; another customer's object -> 404;
- STAFF: staff only; anonymous -> 401; a customer -> 403; kwargs name objects of a customer.

A rule's `staff_methods` are STAFF within an OWNER route (an order's refunds: the owner
reads them, staff create them).
"""

from dataclasses import dataclass
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import place_order
from flows.order_paid import order_place_paid
from invoicing.tests.helpers import refund_succeeded
from orders.services import cart_add_item, cart_get_or_create

PUBLIC, CUSTOMER, OWNER, STAFF = "public", "customer", "owner", "staff"


@dataclass(frozen=True)
class Rule:
    access: str
    methods: tuple[str, ...]
    staff_methods: tuple[str, ...] = ()


ACCESS: dict[str, Rule] = {
    "api-token": Rule(PUBLIC, ("post",)),
    "api-logout": Rule(CUSTOMER, ("post",)),
    "api-logout-all": Rule(CUSTOMER, ("post",)),
    "api-products": Rule(PUBLIC, ("get",)),
    "api-product": Rule(PUBLIC, ("get",)),
    "api-schema": Rule(PUBLIC, ("get",)),
    "api-docs": Rule(PUBLIC, ("get",)),
    "api-webhooks-payments": Rule(PUBLIC, ("post",)),
    "api-webhooks-stripe": Rule(PUBLIC, ("post",)),  # Stripe-Signature is the authentication
    "api-cart": Rule(CUSTOMER, ("get", "delete")),
    "api-cart-items": Rule(CUSTOMER, ("post",)),
    "api-cart-item": Rule(OWNER, ("patch", "delete")),
    "api-checkout": Rule(CUSTOMER, ("post",)),
    "api-orders": Rule(CUSTOMER, ("get",)),
    "api-order": Rule(OWNER, ("get",)),
    "api-order-invoice": Rule(OWNER, ("get",)),
    "api-order-payments": Rule(OWNER, ("get", "post")),
    "api-order-cancel": Rule(OWNER, ("post",)),  # the owner's unpaid order; staff any (paid: refunded)
    "api-order-ship": Rule(STAFF, ("post",)),
    "api-order-deliver": Rule(STAFF, ("post",)),
    "api-order-refunds": Rule(OWNER, ("get", "post"), staff_methods=("post",)),
    "api-invoices": Rule(CUSTOMER, ("get",)),
    "api-invoice": Rule(OWNER, ("get",)),
    "api-invoice-pdf": Rule(OWNER, ("get",)),
    "api-invoice-void": Rule(STAFF, ("post",)),
    "api-invoice-payment-link": Rule(STAFF, ("post",)),
    "api-invoice-send": Rule(STAFF, ("post",)),
    "api-invoices-export": Rule(STAFF, ("get",)),
    "api-credit-notes": Rule(CUSTOMER, ("get",)),
    "api-credit-note": Rule(OWNER, ("get",)),
    "api-credit-note-pdf": Rule(OWNER, ("get",)),
    "api-draft-orders": Rule(STAFF, ("get", "post")),
    "api-draft-order": Rule(STAFF, ("get",)),
    "api-draft-order-finalize": Rule(STAFF, ("post",)),
}

# Valid bodies, so that a refusal comes from the access decision and not from validation.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("api-cart-item", "patch"): {"quantity": 1},
    ("api-order-payments", "post"): {"payment_method": "pm_card_success"},
    ("api-order-ship", "post"): {"carrier": "DHL", "tracking_number": "JD1"},
    ("api-order-refunds", "post"): {"reason": "access check"},
}

_HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def _api_routes() -> dict[str, tuple[str, Any]]:
    """name -> (route, view class) for every URL pattern under /api/v1/."""
    found: dict[str, tuple[str, Any]] = {}

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                route = prefix + str(pattern.pattern)
                if route.startswith("api/v1/"):
                    assert pattern.name, f"API route {route} has no name: name it and add it to ACCESS"
                    view = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
                    found[pattern.name] = (route, view)

    walk(get_resolver().url_patterns, "")
    return found


def _methods(view: Any) -> set[str]:
    return {m for m in _HTTP_METHODS if hasattr(view, m)}


def test_every_api_route_has_an_access_decision():
    routes = _api_routes()
    undecided = sorted(set(routes) - set(ACCESS))
    assert not undecided, f"API routes without an access decision in ACCESS: {undecided}"
    stale = sorted(set(ACCESS) - set(routes))
    assert not stale, f"ACCESS names routes that no longer exist: {stale}"
    for name, (route, view) in routes.items():
        assert view is not None, f"{name} ({route}) is not a DRF view"
        assert _methods(view) == set(ACCESS[name].methods), f"{name}: methods {_methods(view)} not decided"


@pytest.fixture
def world(db):
    """Customer A owns an order (paid, with an invoice) and a cart line; B is another customer."""
    owner = UserFactory(username="owner-a")
    other = UserFactory(username="other-b")
    product = ProductFactory(on_hand=50)
    order = place_order(user=owner, product=product, quantity=1)
    order_place_paid(order_id=order.pk)
    credit_note = refund_succeeded(order=order, amount="1.00")  # pending: its PDF is a 409
    unpaid = place_order(user=owner, product=product, quantity=1)
    line = cart_add_item(cart=cart_get_or_create(user=owner), sku=product.sku, quantity=1)
    return {
        "owner": owner,
        "other": other,
        "kwargs": {
            "order_id": unpaid.pk,
            "invoice_id": order.invoice.pk,
            "credit_note_id": credit_note.pk,
            "line_id": line.pk,
            "sku": product.sku,
            # Staff routes decide on the role before looking anything up: no draft needed.
            "draft_id": 999999,
        },
        "paid_order_id": order.pk,
    }


def _url(world: dict[str, Any], name: str) -> str:
    route, _ = _api_routes()[name]
    path = "/" + route
    for key, value in world["kwargs"].items():
        path = path.replace(f"<int:{key}>", str(value)).replace(f"<str:{key}>", str(value))
        path = path.replace(f"<{key}>", str(value))
    assert "<" not in path, f"{name}: no fixture object for {route}; extend world['kwargs']"
    if name == "api-order-invoice":
        path = path.replace(f"/{world['kwargs']['order_id']}/", f"/{world['paid_order_id']}/")
    return path


def _call(client: APIClient, method: str, url: str, name: str = "") -> Any:
    body = BODIES.get((name, method), {})
    return getattr(client, method)(url, body, format="json", HTTP_IDEMPOTENCY_KEY=f"access-{method}-{url}")


def _is_error(response: Any, status: int, code: str) -> bool:
    body = response.json() if response["Content-Type"].startswith("application/json") else {}
    return response.status_code == status and body.get("error", {}).get("code") == code


def _names(*accesses: str) -> list[str]:
    return sorted(name for name, rule in ACCESS.items() if rule.access in accesses)


@pytest.mark.parametrize("name", _names(CUSTOMER, OWNER, STAFF))
def test_anonymous_gets_401_in_the_error_shape(world, name):
    client = APIClient()
    for method in ACCESS[name].methods:
        response = _call(client, method, _url(world, name), name)
        assert _is_error(response, 401, "not_authenticated"), (name, method, response.status_code, response.content)
        assert response["WWW-Authenticate"] == "Token", (name, method)


@pytest.mark.parametrize("name", _names(PUBLIC))
def test_public_routes_serve_anonymous_callers(world, name):
    client = APIClient()
    for method in ACCESS[name].methods:
        response = _call(client, method, _url(world, name), name)
        if method == "get":
            assert response.status_code == 200, (name, response.status_code)
        else:  # reached the view: its own validation answers, not the permission layer
            body = response.json()
            assert response.status_code in {400, 401, 422}, (name, response.status_code)
            assert body["error"]["message"] != "Authentication credentials were not provided.", name
            assert response.status_code != 403, name


def _staff_methods(name: str) -> tuple[str, ...]:
    rule = ACCESS[name]
    return rule.methods if rule.access == STAFF else rule.staff_methods


_STAFF_ROUTES = sorted(name for name in ACCESS if _staff_methods(name))


@pytest.mark.parametrize("name", _STAFF_ROUTES)
def test_customer_gets_403_on_staff_routes(world, name, client_for):
    client = client_for(world["other"])
    for method in _staff_methods(name):
        response = _call(client, method, _url(world, name), name)
        assert _is_error(response, 403, "permission_denied"), (name, method, response.status_code, response.content)


@pytest.mark.parametrize("name", _STAFF_ROUTES)
def test_staff_pass_the_permission_check_on_staff_routes(world, name, staff_client):
    for method in _staff_methods(name):
        response = _call(staff_client, method, _url(world, name), name)
        assert response.status_code not in {401, 403}, (name, method, response.status_code, response.content)


@pytest.mark.parametrize("name", _names(OWNER))
def test_another_customers_object_is_404(world, name, client_for):
    client = client_for(world["other"])
    for method in ACCESS[name].methods:
        if method in ACCESS[name].staff_methods:
            continue  # refused by role first (403), above
        response = _call(client, method, _url(world, name), name)
        assert _is_error(response, 404, "not_found"), (name, method, response.status_code, response.content)


@pytest.mark.parametrize("name", _names(OWNER, CUSTOMER))
def test_the_owner_is_served(world, name, client_for):
    client = client_for(world["owner"])
    for method in ACCESS[name].methods:
        if method != "get":
            continue  # writes are covered by each app's own tests
        response = _call(client, method, _url(world, name), name)
        # 200, or the view's own answer (the PDF of a pending invoice is a 409): never refused.
        assert response.status_code in {200, 409}, (name, response.status_code, response.content)
