"""Storefront pages through Django's test client (the browser tests live in tests/browser/)."""

import re
from decimal import Decimal

import pytest
from django.test import Client

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import ADDRESS, place_order
from flows.order_paid import order_place_paid
from inventory.models import Stock
from invoicing.models import Invoice
from invoicing.services import FaultInjector, invoice_assign_number
from orders.models import Cart, CartLine, Order
from orders.services import cart_add_item, cart_get_or_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def shopper(client, user):
    client.force_login(user)
    return client


def _lines(cart) -> list[tuple[str, int]]:
    return list(CartLine.objects.filter(cart=cart).order_by("id").values_list("product__sku", "quantity"))


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def _checkout_form(response) -> dict[str, str]:
    key = response.context["form"].initial.get("idempotency_key") or response.context["form"].data["idempotency_key"]
    return {**ADDRESS, "coupon": "", "idempotency_key": key}


# --- Catalog and product -------------------------------------------------------------------


def test_catalog_lists_products_for_sale_with_their_availability(client):
    widget = ProductFactory(name="Widget", on_hand=5)
    ProductFactory(name="Withdrawn", is_active=False)
    place_order(product=widget, quantity=2)

    response = client.get("/")

    assert response.status_code == 200
    assert [(p.name, p.available) for p in response.context["products"]] == [("Widget", 3)]
    assert "Withdrawn" not in response.content.decode()


def test_product_page_and_unknown_product(client):
    ProductFactory(sku="WID-1", name="Widget", price=Decimal("12.50"), on_hand=4)

    page = client.get("/products/WID-1/")
    missing = client.get("/products/NOPE/")

    assert page.status_code == 200
    assert page.context["product"].available == 4
    assert "15.00" in page.content.decode()  # shown with VAT (PRICES_INCLUDE_TAX, the default)
    assert missing.status_code == 404


# --- Cart pages ------------------------------------------------------------------------------


def test_add_to_cart_form_fills_the_session_cart(client):
    ProductFactory(sku="WID-1", on_hand=5)

    response = client.post("/cart/add/", {"sku": "WID-1", "quantity": 2}, follow=True)

    assert response.redirect_chain == [("/cart/", 302)]
    cart = Cart.objects.get(session_key=client.session.session_key)
    assert _lines(cart) == [("WID-1", 2)]
    assert response.context["cart"].item_count == 2


@pytest.mark.parametrize("quantity", ["0", "-2", "abc", "100"])
def test_add_to_cart_form_refuses_bad_quantities(client, quantity):
    ProductFactory(sku="WID-1", name="Widget", on_hand=500)

    response = client.post("/cart/add/", {"sku": "WID-1", "quantity": quantity}, follow=True)

    assert response.status_code == 200
    assert _messages(response) == ["Please enter a whole number from 1 to 99 for Widget (at most 99 per order line)."]
    assert CartLine.objects.count() == 0


def test_add_to_cart_form_refuses_more_than_available(client):
    ProductFactory(sku="WID-1", name="Widget", on_hand=2)

    response = client.post("/cart/add/", {"sku": "WID-1", "quantity": 3}, follow=True)

    assert response.redirect_chain == [("/products/WID-1/", 302)]
    assert _messages(response) == ["Only 2 of Widget available (you asked for 3)."]
    assert CartLine.objects.count() == 0


def test_cart_forms_require_a_csrf_token():
    ProductFactory(sku="WID-1")
    client = Client(enforce_csrf_checks=True)

    response = client.post("/cart/add/", {"sku": "WID-1", "quantity": 1})

    assert response.status_code == 403
    assert CartLine.objects.count() == 0


def test_update_and_remove_a_cart_line_from_the_cart_page(shopper, user):
    ProductFactory(sku="WID-1", name="Widget", on_hand=10)
    line = cart_add_item(cart=cart_get_or_create(user=user), sku="WID-1", quantity=1)

    shopper.post(f"/cart/lines/{line.pk}/update/", {"quantity": 4})
    assert _lines(Cart.objects.get(user=user)) == [("WID-1", 4)]
    refused = shopper.post(f"/cart/lines/{line.pk}/update/", {"quantity": 11}, follow=True)
    assert _messages(refused) == ["Only 10 of Widget available (you asked for 11)."]
    assert _lines(Cart.objects.get(user=user)) == [("WID-1", 4)]

    shopper.post(f"/cart/lines/{line.pk}/remove/")
    assert _lines(Cart.objects.get(user=user)) == []


def test_someone_elses_cart_line_cannot_be_changed_from_the_cart_page(shopper):
    ProductFactory(sku="WID-1", on_hand=10)
    other = UserFactory()
    theirs = cart_add_item(cart=cart_get_or_create(user=other), sku="WID-1", quantity=2)

    updated = shopper.post(f"/cart/lines/{theirs.pk}/update/", {"quantity": 5}, follow=True)
    removed = shopper.post(f"/cart/lines/{theirs.pk}/remove/", follow=True)

    assert _messages(updated) == ["No such line in your cart."]
    assert _messages(removed) == ["No such line in your cart."]
    assert _lines(Cart.objects.get(user=other)) == [("WID-1", 2)]


# --- Checkout page -----------------------------------------------------------------------------


def test_checkout_needs_a_signed_in_shopper(client):
    response = client.get("/checkout/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/checkout/"


def test_checkout_of_an_empty_cart_goes_back_to_the_cart(shopper):
    response = shopper.get("/checkout/")

    assert response.status_code == 302
    assert response["Location"] == "/cart/"


def test_checkout_page_places_one_order_even_when_submitted_twice(shopper, user):
    product = ProductFactory(on_hand=10)
    cart_add_item(cart=cart_get_or_create(user=user), sku=product.sku, quantity=2)
    page = shopper.get("/checkout/")
    form = _checkout_form(page)
    assert re.search(rf'name="idempotency_key" value="{form["idempotency_key"]}"', page.content.decode())

    first = shopper.post("/checkout/", form)
    second = shopper.post("/checkout/", form)  # a double click or a browser resubmit

    order = Order.objects.get()
    assert first.status_code == second.status_code == 302
    # Both land on that one order's payment step.
    assert first["Location"] == second["Location"] == f"/orders/{order.pk}/pay/"
    assert Stock.objects.get(product=product).reserved == 2
    detail = shopper.get(f"/orders/{order.pk}/")
    assert detail.status_code == 200
    assert 'data-testid="order-status">Pending payment<' in detail.content.decode()


def test_checkout_page_with_an_invalid_address_is_400_and_places_nothing(shopper, user):
    product = ProductFactory(on_hand=10)
    cart_add_item(cart=cart_get_or_create(user=user), sku=product.sku, quantity=1)
    form = _checkout_form(shopper.get("/checkout/"))

    response = shopper.post("/checkout/", {**form, "country": "France"})

    assert response.status_code == 400
    assert "country" in response.context["form"].errors
    assert Order.objects.count() == 0
    assert Stock.objects.get(product=product).reserved == 0


def test_checkout_page_short_of_stock_is_409_places_nothing_and_offers_a_fresh_key(shopper, user):
    product = ProductFactory(sku="SHORT", name="Short pen", on_hand=2)
    cart_add_item(cart=cart_get_or_create(user=user), sku="SHORT", quantity=2)
    form = _checkout_form(shopper.get("/checkout/"))
    Stock.objects.filter(product=product).update(on_hand=1)

    response = shopper.post("/checkout/", form)

    assert response.status_code == 409
    assert "<li>Not enough stock for Short pen (only 1 available).</li>" in response.content.decode()
    assert Order.objects.count() == 0
    assert response.context["form"].data["idempotency_key"] != form["idempotency_key"]
    assert _lines(Cart.objects.get(user=user)) == [("SHORT", 2)]


# --- Orders and the invoice block ----------------------------------------------------------


def test_order_pages_show_only_the_shoppers_own_orders(shopper, user):
    mine = place_order(user=user)
    theirs = place_order(user=UserFactory())

    listing = shopper.get("/orders/")
    other_detail = shopper.get(f"/orders/{theirs.pk}/")
    other_block = shopper.get(f"/orders/{theirs.pk}/invoice-block/")

    assert [o.pk for o in listing.context["orders"]] == [mine.pk]
    assert other_detail.status_code == 404
    assert other_block.status_code == 404


def test_order_detail_needs_a_signed_in_shopper(client):
    order = place_order()

    response = client.get(f"/orders/{order.pk}/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_invoice_block_shows_pending_with_a_refresh_then_the_number(shopper, user, django_capture_on_commit_callbacks):
    order = place_order(user=user)
    unpaid = shopper.get(f"/orders/{order.pk}/").content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        order_place_paid(order_id=order.pk)

    pending = shopper.get(f"/orders/{order.pk}/").content.decode()
    invoice_assign_number(invoice_id=Invoice.objects.get(order=order).pk, fault=FaultInjector(rate=0))
    issued_block = shopper.get(f"/orders/{order.pk}/invoice-block/").content.decode()

    assert 'data-testid="invoice-number"' not in unpaid
    assert 'data-testid="invoice-number">Pending<' in pending
    # The Refresh button is a plain GET of the order page: it works without JavaScript.
    assert re.search(rf'<form method="get" action="/orders/{order.pk}/">\s*<button[^>]*id="invoice-refresh"', pending)
    assert 'data-testid="invoice-number">INV-1<' in issued_block
    assert "invoice-refresh" not in issued_block
