from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import NotFound, ValidationFailed
from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import place_order
from inventory.services import InsufficientStock
from orders.models import Cart, CartLine
from orders.services import (
    cart_add_item,
    cart_clear,
    cart_get_or_create,
    cart_merge,
    cart_remove_line,
    cart_update_line,
)

pytestmark = pytest.mark.django_db

ITEMS = "/api/v1/cart/items/"


def _lines(cart) -> list[tuple[str, int]]:
    return list(CartLine.objects.filter(cart=cart).order_by("id").values_list("product__sku", "quantity"))


def _error(response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    return response.status_code, body["error"]["code"]


# --- Services ----------------------------------------------------------------------------


def test_cart_belongs_to_a_user_or_a_session_never_both_nor_neither():
    user = UserFactory()

    with pytest.raises(ValueError, match="user or to a session"):
        cart_get_or_create(user=user, session_key="abc")
    with pytest.raises(ValueError, match="user or to a session"):
        cart_get_or_create()

    assert cart_get_or_create(user=user) == cart_get_or_create(user=user)
    assert Cart.objects.count() == 1


def test_adding_the_same_product_twice_grows_one_line():
    cart = cart_get_or_create(user=UserFactory())
    product = ProductFactory(on_hand=10)

    cart_add_item(cart=cart, sku=product.sku, quantity=2)
    cart_add_item(cart=cart, sku=product.sku, quantity=3)

    assert _lines(cart) == [(product.sku, 5)]


def test_adding_beyond_available_stock_is_refused_and_keeps_the_line():
    cart = cart_get_or_create(user=UserFactory())
    product = ProductFactory(on_hand=5)
    place_order(product=product, quantity=1)  # someone else holds one unit
    cart_add_item(cart=cart, sku=product.sku, quantity=3)

    with pytest.raises(InsufficientStock) as caught:
        cart_add_item(cart=cart, sku=product.sku, quantity=2)

    assert caught.value.details == {
        "skus": [product.sku],
        "lines": [{"sku": product.sku, "requested": 5, "available": 4}],
    }
    assert _lines(cart) == [(product.sku, 3)]


@settings(max_examples=25, deadline=None)
@given(adds=st.lists(st.tuples(st.integers(0, 1), st.integers(-2, 12)), min_size=1, max_size=8))
def test_adding_lines_grows_them_in_one_statement_exactly_as_the_rules_say(adds):
    """Each add either grows its product's line (new line at first) by the quantity, or is
    refused (below 1, above the line maximum, above the free stock) and changes nothing."""
    from django.conf import settings as django_settings

    with transaction.atomic():  # one example's rows, rolled back after it
        cart = cart_get_or_create(user=UserFactory())
        products = [ProductFactory(on_hand=15), ProductFactory(on_hand=4)]
        expected: dict[str, int] = {}
        for index, quantity in adds:
            product = products[index]
            total = expected.get(product.sku, 0) + quantity
            allowed = quantity >= 1 and total <= min(django_settings.CART_MAX_QUANTITY, product.stock.on_hand)
            if allowed:
                line = cart_add_item(cart=cart, sku=product.sku, quantity=quantity)
                expected[product.sku] = total
                assert (line.product_id, line.quantity) == (product.pk, total)
                stored = CartLine.objects.get(pk=line.pk)
                assert (stored.quantity, stored.created_at) == (total, line.created_at)
            else:
                with pytest.raises((ValidationFailed, InsufficientStock)):
                    cart_add_item(cart=cart, sku=product.sku, quantity=quantity)
            assert dict(_lines(cart)) == expected
        transaction.set_rollback(True)


def test_the_line_upsert_names_the_cart_line_table():
    from orders import services

    assert f'INTO "{CartLine._meta.db_table}"' in services._CART_LINE_GROW


@pytest.mark.parametrize("quantity", [0, -1, 100])
def test_service_refuses_out_of_range_quantities(quantity):
    cart = cart_get_or_create(user=UserFactory())
    product = ProductFactory(on_hand=500)

    with pytest.raises(ValidationFailed):
        cart_add_item(cart=cart, sku=product.sku, quantity=quantity)

    assert _lines(cart) == []


def test_service_refuses_unknown_and_withdrawn_products():
    cart = cart_get_or_create(user=UserFactory())
    withdrawn = ProductFactory(is_active=False)

    with pytest.raises(NotFound):
        cart_add_item(cart=cart, sku="NOPE", quantity=1)
    with pytest.raises(NotFound):
        cart_add_item(cart=cart, sku=withdrawn.sku, quantity=1)

    assert _lines(cart) == []


def test_update_remove_and_clear_lines():
    cart = cart_get_or_create(user=UserFactory())
    a, b = ProductFactory(on_hand=10), ProductFactory(on_hand=10)
    line_a = cart_add_item(cart=cart, sku=a.sku, quantity=1)
    line_b = cart_add_item(cart=cart, sku=b.sku, quantity=1)

    cart_update_line(cart=cart, line_id=line_a.pk, quantity=7)
    cart_remove_line(cart=cart, line_id=line_b.pk)
    assert _lines(cart) == [(a.sku, 7)]

    cart_clear(cart=cart)
    assert _lines(cart) == []


def test_merge_adds_quantities_caps_them_by_available_and_the_line_maximum(settings):
    settings.CART_MAX_QUANTITY = 20
    user = UserFactory()
    capped_by_stock = ProductFactory(on_hand=6)
    capped_by_max = ProductFactory(on_hand=100)
    new_line = ProductFactory(on_hand=10)
    sold_out = ProductFactory(on_hand=1)
    place_order(product=sold_out, quantity=1)
    user_cart = cart_get_or_create(user=user)
    cart_add_item(cart=user_cart, sku=capped_by_stock.sku, quantity=3)
    cart_add_item(cart=user_cart, sku=capped_by_max.sku, quantity=15)
    anonymous = cart_get_or_create(session_key="anon-session")
    CartLine.objects.bulk_create(
        [
            CartLine(cart=anonymous, product=capped_by_stock, quantity=5),
            CartLine(cart=anonymous, product=capped_by_max, quantity=15),
            CartLine(cart=anonymous, product=new_line, quantity=2),
            CartLine(cart=anonymous, product=sold_out, quantity=1),
        ]
    )

    merged = cart_merge(session_key="anon-session", user=user)

    assert merged == user_cart
    assert sorted(_lines(user_cart)) == sorted([(capped_by_stock.sku, 6), (capped_by_max.sku, 20), (new_line.sku, 2)])
    assert not Cart.objects.filter(session_key="anon-session").exists()


def test_merge_without_an_anonymous_cart_changes_nothing():
    user = UserFactory()
    product = ProductFactory()
    cart_add_item(cart=cart_get_or_create(user=user), sku=product.sku, quantity=2)

    cart_merge(session_key="never-had-a-cart", user=user)

    assert _lines(cart_get_or_create(user=user)) == [(product.sku, 2)]


# --- Merge on sign-in through the real login page -----------------------------------------


def test_login_page_merges_the_anonymous_cart_into_the_users_cart(client):
    user = UserFactory(username="ada")
    a, b = ProductFactory(on_hand=6), ProductFactory(on_hand=10)
    place_order(product=a, quantity=1)  # available: 5
    cart_add_item(cart=cart_get_or_create(user=user), sku=a.sku, quantity=3)
    assert client.post("/cart/add/", {"sku": a.sku, "quantity": 4}).status_code == 302
    assert client.post("/cart/add/", {"sku": b.sku, "quantity": 2}).status_code == 302
    anonymous_key = client.session.session_key

    response = client.post("/accounts/login/", {"username": "ada", "password": "pass-word-123"})

    assert response.status_code == 302
    assert sorted(_lines(Cart.objects.get(user=user))) == sorted([(a.sku, 5), (b.sku, 2)])
    assert not Cart.objects.filter(session_key=anonymous_key).exists()
    assert client.session.session_key != anonymous_key  # the session was cycled on login
    page = client.get("/cart/")
    assert page.context["cart"].item_count == 7


def test_failed_login_merges_nothing(client):
    user = UserFactory(username="ada")
    product = ProductFactory(on_hand=10)
    client.post("/cart/add/", {"sku": product.sku, "quantity": 2})
    anonymous_key = client.session.session_key

    response = client.post("/accounts/login/", {"username": "ada", "password": "wrong"})

    assert response.status_code == 200
    assert not Cart.objects.filter(user=user).exists()
    assert _lines(Cart.objects.get(session_key=anonymous_key)) == [(product.sku, 2)]


def test_signup_keeps_the_anonymous_cart(client):
    product = ProductFactory(on_hand=10)
    client.post("/cart/add/", {"sku": product.sku, "quantity": 2})

    response = client.post(
        "/accounts/signup/",
        {"username": "newbie", "email": "n@example.com", "password1": "Sturdy-pass-42", "password2": "Sturdy-pass-42"},
    )

    assert response.status_code == 302
    assert _lines(Cart.objects.get(user__username="newbie")) == [(product.sku, 2)]
    assert not Cart.objects.filter(user__isnull=True).exists()


# --- The cart API --------------------------------------------------------------------------


def test_add_item_over_the_api_returns_the_cart(shopper_client, user):
    product = ProductFactory(sku="WID-1", name="Widget", price=Decimal("12.50"), on_hand=10)

    response = shopper_client.post(ITEMS, {"sku": "WID-1", "quantity": 2}, format="json")

    assert response.status_code == 201
    body = response.json()
    line_id = CartLine.objects.get(cart__user=user).pk
    assert body == {
        "id": Cart.objects.get(user=user).pk,
        "currency": "EUR",
        "lines": [
            {
                "id": line_id,
                "sku": "WID-1",
                "name": "Widget",
                "quantity": 2,
                "unit_price": "12.50",
                "line_total": "25.00",
                "available": 10,
            }
        ],
        "item_count": 2,
        "subtotal": "25.00",
        "discount": "0.00",
        "shipping": "4.90",
        "tax": "5.98",
        "total": "35.88",
    }
    assert product.pk == CartLine.objects.get(pk=line_id).product_id


def test_get_cart_over_the_api(shopper_client):
    response = shopper_client.get("/api/v1/cart/")

    assert response.status_code == 200
    assert response.json()["lines"] == []
    assert response.json()["total"] == "0.00"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"sku": "WID-1", "quantity": -1}, "quantity"),
        ({"sku": "WID-1", "quantity": 0}, "quantity"),
        ({"sku": "WID-1", "quantity": 10**12}, "quantity"),
        ({"sku": "WID-1", "quantity": 100}, "quantity"),
        ({"sku": "WID-1", "quantity": 1.5}, "quantity"),
        ({"sku": "WID-1", "quantity": "lots"}, "quantity"),
        ({"sku": "WID-1", "quantity": None}, "quantity"),
        ({"sku": "WID-1"}, "quantity"),
        ({"quantity": 1}, "sku"),
        ({"sku": "", "quantity": 1}, "sku"),
        ({"sku": "X" * 65, "quantity": 1}, "sku"),
    ],
)
def test_invalid_cart_items_are_400_with_field_details_and_change_nothing(shopper_client, user, payload, field):
    product = ProductFactory(sku="WID-1", on_hand=500)
    cart_add_item(cart=cart_get_or_create(user=user), sku=product.sku, quantity=1)

    response = shopper_client.post(ITEMS, payload, format="json")

    assert _error(response) == (400, "validation_error")
    assert list(response.json()["error"]["details"]) == [field]
    assert _lines(Cart.objects.get(user=user)) == [("WID-1", 1)]


def test_unknown_sku_is_404_naming_it_and_changes_nothing(shopper_client, user):
    response = shopper_client.post(ITEMS, {"sku": "NOPE-9", "quantity": 1}, format="json")

    assert _error(response) == (404, "not_found")
    assert response.json()["error"]["details"] == {"sku": ["Unknown SKU 'NOPE-9'."]}
    assert CartLine.objects.count() == 0


def test_more_than_available_is_409_insufficient_stock_and_changes_nothing(shopper_client, user):
    ProductFactory(sku="WID-1", on_hand=5)
    shopper_client.post(ITEMS, {"sku": "WID-1", "quantity": 4}, format="json")

    response = shopper_client.post(ITEMS, {"sku": "WID-1", "quantity": 2}, format="json")

    assert _error(response) == (409, "insufficient_stock")
    assert response.json()["error"]["details"] == {
        "skus": ["WID-1"],
        "lines": [{"sku": "WID-1", "requested": 6, "available": 5}],
    }
    assert _lines(Cart.objects.get(user=user)) == [("WID-1", 4)]


def test_malformed_json_is_400_parse_error_and_changes_nothing(shopper_client):
    ProductFactory(sku="WID-1")

    response = shopper_client.post(ITEMS, data='{"sku": "WID-1", "quantity": ', content_type="application/json")

    assert _error(response) == (400, "parse_error")
    assert CartLine.objects.count() == 0


def test_non_json_body_is_415_in_the_error_shape_and_changes_nothing(shopper_client):
    ProductFactory(sku="WID-1")

    response = shopper_client.post(ITEMS, data="sku=WID-1&quantity=1", content_type="application/x-www-form-urlencoded")

    assert _error(response) == (415, "unsupported_media_type")
    assert CartLine.objects.count() == 0


def test_json_that_is_not_an_object_is_400(shopper_client):
    response = shopper_client.post(ITEMS, [1, 2], format="json")

    assert _error(response) == (400, "validation_error")
    assert "non_field_errors" in response.json()["error"]["details"]
    assert CartLine.objects.count() == 0


def test_patch_changes_a_lines_quantity(shopper_client, user):
    ProductFactory(sku="WID-1", on_hand=10)
    line = cart_add_item(cart=cart_get_or_create(user=user), sku="WID-1", quantity=1)

    response = shopper_client.patch(f"{ITEMS}{line.pk}/", {"quantity": 4}, format="json")

    assert response.status_code == 200
    assert [(row["id"], row["quantity"]) for row in response.json()["lines"]] == [(line.pk, 4)]
    assert _lines(Cart.objects.get(user=user)) == [("WID-1", 4)]


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [(0, (400, "validation_error")), (-3, (400, "validation_error")), (10**9, (400, "validation_error")),
     ("x", (400, "validation_error")), (11, (409, "insufficient_stock"))],
)  # fmt: skip
def test_patch_refuses_bad_quantities_and_changes_nothing(shopper_client, user, quantity, expected):
    ProductFactory(sku="WID-1", on_hand=10)
    line = cart_add_item(cart=cart_get_or_create(user=user), sku="WID-1", quantity=2)

    response = shopper_client.patch(f"{ITEMS}{line.pk}/", {"quantity": quantity}, format="json")

    assert _error(response) == expected
    assert _lines(Cart.objects.get(user=user)) == [("WID-1", 2)]


def test_delete_removes_a_line_once(shopper_client, user):
    ProductFactory(sku="WID-1")
    line = cart_add_item(cart=cart_get_or_create(user=user), sku="WID-1", quantity=2)

    first = shopper_client.delete(f"{ITEMS}{line.pk}/")
    second = shopper_client.delete(f"{ITEMS}{line.pk}/")

    assert first.status_code == 204
    assert _error(second) == (404, "not_found")
    assert CartLine.objects.count() == 0


def test_someone_elses_cart_line_is_404_and_stays_untouched(shopper_client, user):
    ProductFactory(sku="WID-1", on_hand=10)
    other = UserFactory()
    theirs = cart_add_item(cart=cart_get_or_create(user=other), sku="WID-1", quantity=2)

    patched = shopper_client.patch(f"{ITEMS}{theirs.pk}/", {"quantity": 5}, format="json")
    deleted = shopper_client.delete(f"{ITEMS}{theirs.pk}/")

    assert _error(patched) == (404, "not_found")
    assert _error(deleted) == (404, "not_found")
    assert "WID-1" not in patched.content.decode()
    assert _lines(Cart.objects.get(user=other)) == [("WID-1", 2)]
    assert not CartLine.objects.filter(cart__user=user).exists()


def test_anonymous_cart_api_is_401(api_client):
    ProductFactory(sku="WID-1")

    listed = api_client.get("/api/v1/cart/")
    added = api_client.post(ITEMS, {"sku": "WID-1", "quantity": 1}, format="json")

    assert _error(listed) == (401, "not_authenticated")
    assert _error(added) == (401, "not_authenticated")
    assert CartLine.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_adds_of_one_product_to_one_cart_lose_no_unit():
    # Each add reads the line, then writes quantity + 1 under the cart's row lock (taken by
    # cart_touch's UPDATE): without it, adds that read the same quantity overwrite each other.
    import threading

    from django.db import connections

    product, user = ProductFactory(on_hand=1000), UserFactory()
    cart = cart_get_or_create(user=user)
    threads_n = 12
    start, errors = threading.Barrier(threads_n), []

    def add() -> None:
        try:
            start.wait()
            for _ in range(5):
                cart_add_item(cart=cart, sku=product.sku, quantity=1)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=add) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert list(CartLine.objects.filter(cart=cart).values_list("quantity", flat=True)) == [threads_n * 5]
