"""List filters, ordering and page sizes over HTTP; the cart can be emptied."""

import pytest

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import place_order
from orders.models import CartLine

pytestmark = pytest.mark.django_db


def _skus(response):
    return [p["sku"] for p in response.json()["results"]]


def test_products_search_in_stock_and_ordering(api_client):
    ProductFactory(sku="MUG-1", name="Blue mug", price="9.00", on_hand=3)
    ProductFactory(sku="MUG-2", name="Red mug", price="5.00", on_hand=0)
    ProductFactory(sku="TEE-1", name="Shirt", description="a mug print", price="20.00", on_hand=1)

    assert _skus(api_client.get("/api/v1/products/?search=mug&ordering=-price")) == ["TEE-1", "MUG-1", "MUG-2"]
    assert _skus(api_client.get("/api/v1/products/?search=mug&in_stock=true&ordering=price")) == ["MUG-1", "TEE-1"]
    assert _skus(api_client.get("/api/v1/products/?ordering=name")) == ["MUG-1", "MUG-2", "TEE-1"]


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/api/v1/products/?in_stock=maybe", "in_stock"),
        ("/api/v1/products/?ordering=sku", "ordering"),
        ("/api/v1/products/?page_size=201", "page_size"),
        ("/api/v1/products/?page_size=abc", "page_size"),
        ("/api/v1/products/?page_size=0", "page_size"),
        ("/api/v1/orders/?created_after=yesterday", "created_after"),
        ("/api/v1/orders/?status=lost", "status"),
        ("/api/v1/orders/?ordering=secret", "ordering"),
        ("/api/v1/invoices/?payment_status=maybe", "payment_status"),
        ("/api/v1/invoices/?issued_before=2024-13-45T00:00:00Z", "issued_before"),
    ],
)
def test_a_malformed_filter_is_a_400_naming_the_parameter(shopper_client, url, parameter):
    response = shopper_client.get(url)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert list(response.json()["error"]["details"]) == [parameter]


def test_page_size_up_to_200(api_client):
    for i in range(3):
        ProductFactory(name=f"P{i}")

    body = api_client.get("/api/v1/products/?page_size=2").json()
    full = api_client.get("/api/v1/products/?page_size=200").json()

    assert (body["count"], len(body["results"]), body["next"] is not None) == (3, 2, True)
    assert len(full["results"]) == 3


def test_orders_filter_by_status_and_dates(shopper_client, user):
    mine = place_order(user=user)
    place_order(user=UserFactory())
    day = mine.created_at.date().isoformat()

    pending = shopper_client.get("/api/v1/orders/?status=pending_payment").json()
    paid = shopper_client.get("/api/v1/orders/?status=paid").json()
    after = shopper_client.get(f"/api/v1/orders/?created_after={day}T00:00:00Z&ordering=-total").json()
    before = shopper_client.get(f"/api/v1/orders/?created_before={day}T00:00:00Z").json()

    assert [o["id"] for o in pending["results"]] == [mine.pk]
    assert (paid["count"], after["count"], before["count"]) == (0, 1, 0)


def test_delete_cart_empties_it(shopper_client, user, product):
    shopper_client.post("/api/v1/cart/items/", {"sku": product.sku, "quantity": 2}, format="json")

    response = shopper_client.delete("/api/v1/cart/")

    assert response.status_code == 204
    assert CartLine.objects.filter(cart__user=user).count() == 0
    assert shopper_client.get("/api/v1/cart/").json()["lines"] == []


def test_invoices_filter_by_number_customer_and_payment_status(staff_client, django_capture_on_commit_callbacks):
    from flows.order_paid import order_place_paid
    from invoicing.models import Invoice
    from invoicing.services import FaultInjector, invoice_assign_number

    ada = UserFactory(first_name="Ada", email="ada@example.com")
    order = place_order(user=ada)
    with django_capture_on_commit_callbacks(execute=False):
        order_place_paid(order_id=order.pk)
    invoice = Invoice.objects.get(order=order)
    invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=0))
    invoice.refresh_from_db()

    def ids(query):
        response = staff_client.get(f"/api/v1/invoices/?{query}")
        assert response.status_code == 200, response.json()
        return [i["id"] for i in response.json()["results"]]

    assert ids(f"search=INV-{invoice.number}") == [invoice.pk]
    assert ids("search=ada@example") == [invoice.pk]
    assert ids("search=nobody-here") == []
    assert ids("status=issued&series=INV") == [invoice.pk]
    assert ids("status=pending") == []
    assert ids("issued_after=2000-01-01T00:00:00Z&ordering=-number") == [invoice.pk]
