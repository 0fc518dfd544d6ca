import pytest
from django.urls import reverse

from common.tests.factories import ProductFactory, StaffFactory
from common.tests.helpers import place_order
from inventory.models import Product, Stock

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(StaffFactory(is_superuser=True))
    return client


def _form(product: Product, on_hand: int) -> dict[str, object]:
    return {
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "price": "10.00",
        "currency": "EUR",
        "tax_rate": "20",  # in percent (common.admin_display.PercentRateField)
        "is_active": "on",
        "on_hand": on_hand,
    }


def test_staff_edit_of_on_hand_never_overwrites_reserved(admin_client):
    product = ProductFactory(on_hand=10)
    page = admin_client.get(reverse("admin:inventory_product_change", args=[product.pk]))
    assert page.status_code == 200
    # A checkout reserves 3 units after the form was rendered (its in-memory stock is stale).
    place_order(product=product, quantity=3)

    response = admin_client.post(reverse("admin:inventory_product_change", args=[product.pk]), _form(product, 25))

    assert response.status_code == 302
    stock = Stock.objects.get(product=product)
    assert (stock.on_hand, stock.reserved) == (25, 3)


def test_on_hand_below_reserved_is_refused_and_changes_nothing(admin_client):
    product = ProductFactory(on_hand=10)
    place_order(product=product, quantity=4)

    response = admin_client.post(reverse("admin:inventory_product_change", args=[product.pk]), _form(product, 3))

    assert response.status_code == 200
    assert "4 units are reserved" in response.content.decode()
    stock = Stock.objects.get(product=product)
    assert (stock.on_hand, stock.reserved) == (10, 4)


def test_product_created_in_admin_gets_its_stock(admin_client):
    data = _form(Product(sku="NEW-1", name="New", description="d"), 7)

    response = admin_client.post(reverse("admin:inventory_product_add"), data)

    assert response.status_code == 302
    assert Stock.objects.get(product__sku="NEW-1").on_hand == 7
    listing = admin_client.get(reverse("admin:inventory_product_changelist"))
    assert "NEW-1" in listing.content.decode()
