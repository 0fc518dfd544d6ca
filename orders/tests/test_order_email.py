"""The e-mail on the order: asked at checkout (prefilled with the account's), stored on the
order, shown to the shopper and staff, and where the order's customer e-mails go."""

import uuid

import pytest

from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import ADDRESS
from orders.models import Order
from orders.services import cart_add_item, cart_get_or_create, checkout_place_order

pytestmark = pytest.mark.django_db

FORM = {"name": "Ada Lovelace", "line1": "1 Main St", "city": "Paris", "postal_code": "75001", "country": "FR"}


def _cart(user, sku="MUG-1"):
    ProductFactory(sku=sku, on_hand=5)
    cart = cart_get_or_create(user=user)
    cart_add_item(cart=cart, sku=sku, quantity=1)
    return cart


def _key(page) -> str:
    return page.context["form"].initial["idempotency_key"]


def test_the_checkout_page_asks_for_the_email_prefilled_and_stores_the_one_given(client):
    user = UserFactory(email="ada@example.com")
    _cart(user)
    client.force_login(user)
    page = client.get("/checkout/")
    html = page.content.decode()
    assert 'type="email"' in html
    assert 'value="ada@example.com"' in html
    assert 'autocomplete="email"' in html

    client.post("/checkout/", {**FORM, "email": "orders@ada.example", "idempotency_key": _key(page)})

    order = Order.objects.get(user=user)
    assert order.email == "orders@ada.example"
    assert "E-mails go to orders@ada.example" in client.get(f"/orders/{order.pk}/").content.decode()


def test_an_empty_email_falls_back_to_the_account_and_a_malformed_one_is_an_error(client):
    user = UserFactory(email="ada@example.com")
    _cart(user)
    client.force_login(user)
    bad = client.post("/checkout/", {**FORM, "email": "not-an-address", "idempotency_key": str(uuid.uuid4())})
    assert bad.status_code == 400
    assert not Order.objects.exists()
    assert "Enter a valid email address." in bad.content.decode()

    client.post("/checkout/", {**FORM, "email": "", "idempotency_key": str(uuid.uuid4())})
    assert Order.objects.get(user=user).email == "ada@example.com"


def test_the_api_takes_an_optional_email_and_answers_it(client_for):
    user = UserFactory(email="ada@example.com")
    api = client_for(user)
    _cart(user)
    body = {"shipping_address": ADDRESS, "email": "ap@ada.example"}
    created = api.post("/api/v1/checkout/", body, format="json", headers={"Idempotency-Key": str(uuid.uuid4())})
    assert created.status_code == 201, created.content
    assert created.json()["email"] == "ap@ada.example"

    _cart(user, sku="MUG-2")
    bad = api.post(
        "/api/v1/checkout/",
        {"shipping_address": ADDRESS, "email": "nope"},
        format="json",
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "validation_error"
    assert "email" in bad.json()["error"]["details"]
    assert Order.objects.count() == 1

    plain = api.post(
        "/api/v1/checkout/",
        {"shipping_address": ADDRESS},
        format="json",
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert plain.json()["email"] == "ada@example.com"


def test_the_order_admin_shows_the_email_read_only_and_offers_no_save(client):
    user = UserFactory(email="ada@example.com")
    order = checkout_place_order(cart=_cart(user), user=user, shipping_address=ADDRESS, email="o@ada.example")
    client.force_login(StaffFactory(is_superuser=True))
    html = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert "o@ada.example" in html
    assert 'name="email"' not in html  # not a form field
    assert 'name="_save"' not in html
    assert 'name="_continue"' not in html
