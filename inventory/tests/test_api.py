from decimal import Decimal

import pytest

from common.tests.factories import ProductFactory
from common.tests.helpers import place_order

pytestmark = pytest.mark.django_db


def test_product_list_gives_the_catalog_with_available_stock(api_client):
    widget = ProductFactory(sku="WID-1", name="Widget", price=Decimal("12.50"), on_hand=10)
    ProductFactory(sku="GAD-1", name="Gadget", price=Decimal("3.00"), on_hand=0)
    ProductFactory(sku="OLD-1", name="Old thing", is_active=False)
    place_order(product=widget, quantity=3)

    response = api_client.get("/api/v1/products/")

    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (2, None, None)
    assert body["results"] == [
        {
            "sku": "GAD-1",
            "name": "Gadget",
            "description": "A fine product.",
            "price": "3.00",
            "currency": "EUR",
            "tax_rate": "0.2000",
            "available": 0,
        },
        {
            "sku": "WID-1",
            "name": "Widget",
            "description": "A fine product.",
            "price": "12.50",
            "currency": "EUR",
            "tax_rate": "0.2000",
            "available": 7,
        },
    ]


def test_product_detail_by_sku(api_client):
    ProductFactory(sku="WID-1", name="Widget", price=Decimal("12.50"), on_hand=7)

    response = api_client.get("/api/v1/products/WID-1/")

    assert response.status_code == 200
    assert response.json() == {
        "sku": "WID-1",
        "name": "Widget",
        "description": "A fine product.",
        "price": "12.50",
        "currency": "EUR",
        "tax_rate": "0.2000",
        "available": 7,
    }


@pytest.mark.parametrize("sku", ["NOPE-1", "OLD-1"])
def test_unknown_or_inactive_product_is_404_in_the_error_shape(api_client, sku):
    ProductFactory(sku="OLD-1", is_active=False)

    response = api_client.get(f"/api/v1/products/{sku}/")

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "details": {}}}


def test_product_list_paginates(api_client):
    for i in range(3):
        ProductFactory(name=f"P{i}")

    first = api_client.get("/api/v1/products/?page_size=2").json()
    second = api_client.get("/api/v1/products/?page_size=2&page=2").json()

    assert [p["name"] for p in first["results"]] == ["P0", "P1"]
    assert first["next"].endswith("page=2&page_size=2")
    assert [p["name"] for p in second["results"]] == ["P2"]


def test_product_list_query_count_does_not_grow_with_the_catalog(api_client, django_assert_num_queries):
    for _ in range(10):
        ProductFactory()

    with django_assert_num_queries(2):  # count + page
        response = api_client.get("/api/v1/products/")

    assert len(response.json()["results"]) == 10
