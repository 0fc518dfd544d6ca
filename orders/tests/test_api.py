"""Orders over the API: representation, visibility (owner or staff, 404 for anyone else)."""

from decimal import Decimal

import pytest

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import ADDRESS, place_order
from flows.order_paid import order_place_paid
from invoicing.models import Invoice
from invoicing.services import FaultInjector, invoice_assign_number

pytestmark = pytest.mark.django_db

# The order representation of the design (clients rely on these; more are allowed).
ORDER_FIELDS = {
    "id", "status", "currency", "subtotal", "discount", "shipping", "tax", "total", "lines",
    "reservation_expires_at", "payment_status", "invoice", "created_at",
}  # fmt: skip
LINE_FIELDS = {"sku", "quantity", "unit_price", "line_total"}


def _paid(order, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        order_place_paid(order_id=order.pk)
    return Invoice.objects.get(order=order)


def test_order_detail_has_the_designs_fields(shopper_client, user):
    product = ProductFactory(sku="A-1", price=Decimal("12.50"))
    order = place_order(user=user, product=product, quantity=2)

    response = shopper_client.get(f"/api/v1/orders/{order.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) >= ORDER_FIELDS
    assert (body["id"], body["status"], body["currency"]) == (order.pk, "pending_payment", "EUR")
    assert (body["subtotal"], body["discount"], body["shipping"], body["tax"], body["total"]) == (
        "25.00", "0.00", "4.90", "5.98", "35.88",
    )  # fmt: skip
    assert [{k: line[k] for k in LINE_FIELDS} for line in body["lines"]] == [
        {"sku": "A-1", "quantity": 2, "unit_price": "12.50", "line_total": "25.00"}
    ]
    assert body["reservation_expires_at"] == order.reservation_expires_at.isoformat().replace("+00:00", "Z")
    assert body["payment_status"] == "unpaid"
    assert body["invoice"] is None
    assert body["shipping_address"] == ADDRESS


def test_paid_order_shows_its_invoice_pending_then_numbered(shopper_client, user, django_capture_on_commit_callbacks):
    order = place_order(user=user)
    invoice = _paid(order, django_capture_on_commit_callbacks)

    pending = shopper_client.get(f"/api/v1/orders/{order.pk}/").json()
    invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=0))
    issued = shopper_client.get(f"/api/v1/orders/{order.pk}/").json()

    assert (pending["status"], pending["payment_status"], pending["reservation_expires_at"]) == ("paid", "paid", None)
    assert {k: pending["invoice"][k] for k in ("invoice_number", "status")} == {
        "invoice_number": None,
        "status": "pending",
    }
    assert {k: issued["invoice"][k] for k in ("invoice_number", "status")} == {"invoice_number": 1, "status": "issued"}


def test_order_list_shows_only_the_callers_orders_newest_first(shopper_client, user):
    mine_old = place_order(user=user)
    place_order(user=UserFactory())
    mine_new = place_order(user=user)

    response = shopper_client.get("/api/v1/orders/")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [o["id"] for o in body["results"]] == [mine_new.pk, mine_old.pk]
    assert all(set(o) >= ORDER_FIELDS for o in body["results"])


def test_staff_see_every_order(staff_client):
    orders = [place_order(), place_order()]

    listed = staff_client.get("/api/v1/orders/").json()
    detail = staff_client.get(f"/api/v1/orders/{orders[0].pk}/")

    assert sorted(o["id"] for o in listed["results"]) == sorted(o.pk for o in orders)
    assert detail.status_code == 200


def test_someone_elses_order_is_404_and_reveals_nothing(shopper_client):
    theirs = place_order(user=UserFactory(username="victim"), product=ProductFactory(sku="SECRET-SKU"))

    response = shopper_client.get(f"/api/v1/orders/{theirs.pk}/")

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "details": {}}}
    assert "SECRET-SKU" not in response.content.decode()


def test_an_order_that_does_not_exist_is_the_same_404(shopper_client):
    response = shopper_client.get("/api/v1/orders/999999/")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api/v1/orders/", "/api/v1/orders/1/"])
def test_anonymous_is_401(api_client, path):
    place_order()

    response = api_client.get(path)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_bad_token_is_401(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = api_client.get("/api/v1/orders/")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_order_list_query_count_does_not_grow_with_orders(shopper_client, user, django_assert_max_num_queries):
    for _ in range(2):
        place_order(user=user)
    with django_assert_max_num_queries(20) as few:
        shopper_client.get("/api/v1/orders/")
    for _ in range(8):
        place_order(user=user)

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = shopper_client.get("/api/v1/orders/")

    assert response.json()["count"] == 10
