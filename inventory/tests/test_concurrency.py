"""The oversell race on PostgreSQL: many shoppers check out the last units at once.

Real threads, each with its own database connection, released together by a barrier;
the invariant is asserted over the whole table afterwards.
"""

from collections import Counter

import pytest
from django.db.models import Sum
from rest_framework.test import APIClient

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import ADDRESS, run_in_threads
from conftest import api_token_for
from inventory.models import Reservation, ReservationStatus, Stock
from inventory.services import InsufficientStock
from orders.models import CartLine, Order
from orders.services import cart_add_item, cart_get_or_create, checkout_place_order

pytestmark = pytest.mark.django_db(transaction=True)

SHOPPERS = 50
UNITS = 10


def _active_reserved(product) -> int:
    total = Reservation.objects.filter(product=product, status=ReservationStatus.ACTIVE).aggregate(n=Sum("quantity"))
    return int(total["n"] or 0)


def _assert_stock_consistent(product, *, on_hand: int, reserved: int) -> None:
    stock = Stock.objects.get(product=product)
    assert (stock.on_hand, stock.reserved) == (on_hand, reserved)
    assert _active_reserved(product) == stock.reserved
    assert stock.reserved <= stock.on_hand


def _shoppers_with_carts(*cart_contents: list[tuple[object, int]]) -> list:
    users = []
    for i, contents in enumerate(cart_contents):
        user = UserFactory(username=f"racer{i}")
        cart = cart_get_or_create(user=user)
        for product, quantity in contents:
            cart_add_item(cart=cart, sku=product.sku, quantity=quantity)
        users.append(user)
    return users


def test_fifty_concurrent_checkouts_never_oversell_ten_units():
    product = ProductFactory(on_hand=UNITS)
    users = _shoppers_with_carts(*[[(product, 1)]] * SHOPPERS)

    def checkout(i: int) -> str:
        user = users[i]
        try:
            checkout_place_order(cart=cart_get_or_create(user=user), user=user, shipping_address=ADDRESS)
        except InsufficientStock as exc:
            return "insufficient_stock:" + ",".join(exc.details["skus"])
        return "placed"

    outcomes = run_in_threads(checkout, SHOPPERS)

    # Every outcome is one of the two expected ones: no deadlock or other DB error escaped.
    assert Counter(outcomes) == {"placed": UNITS, f"insufficient_stock:{product.sku}": SHOPPERS - UNITS}
    assert Order.objects.count() == UNITS
    _assert_stock_consistent(product, on_hand=UNITS, reserved=UNITS)
    assert Reservation.objects.filter(product=product).count() == UNITS
    # The losers' carts are untouched, the winners' emptied.
    assert CartLine.objects.count() == SHOPPERS - UNITS


def test_fifty_concurrent_api_checkouts_get_201_or_409_insufficient_stock():
    product = ProductFactory(on_hand=UNITS)
    users = _shoppers_with_carts(*[[(product, 1)]] * SHOPPERS)
    tokens = [api_token_for(user) for user in users]

    def checkout(i: int) -> tuple[int, str]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {tokens[i]}")
        response = client.post(
            "/api/v1/checkout/", {"shipping_address": ADDRESS}, format="json", HTTP_IDEMPOTENCY_KEY=f"race-{i}"
        )
        body = response.json()
        if response.status_code == 201:
            return 201, body["status"]
        return response.status_code, body["error"]["code"]

    outcomes = run_in_threads(checkout, SHOPPERS)

    assert Counter(outcomes) == {(201, "pending_payment"): UNITS, (409, "insufficient_stock"): SHOPPERS - UNITS}
    assert Order.objects.count() == UNITS
    _assert_stock_consistent(product, on_hand=UNITS, reserved=UNITS)


def test_carts_with_two_products_in_opposite_orders_neither_deadlock_nor_oversell():
    # Deadlock bait: half the carts list A then B, the other half B then A, and each
    # takes one unit of both. Only B is scarce; A has room for everybody.
    a, b = ProductFactory(on_hand=SHOPPERS), ProductFactory(on_hand=UNITS)
    users = _shoppers_with_carts(*[[(a, 1), (b, 1)] if i % 2 else [(b, 1), (a, 1)] for i in range(SHOPPERS)])

    def checkout(i: int) -> str:
        user = users[i]
        try:
            checkout_place_order(cart=cart_get_or_create(user=user), user=user, shipping_address=ADDRESS)
        except InsufficientStock as exc:
            return "insufficient_stock:" + ",".join(exc.details["skus"])
        return "placed"

    outcomes = run_in_threads(checkout, SHOPPERS)

    assert Counter(outcomes) == {"placed": UNITS, f"insufficient_stock:{b.sku}": SHOPPERS - UNITS}
    _assert_stock_consistent(a, on_hand=SHOPPERS, reserved=UNITS)
    _assert_stock_consistent(b, on_hand=UNITS, reserved=UNITS)
    # Each placed order holds both products; no order holds only one of them.
    for order in Order.objects.all():
        held = sorted(Reservation.objects.filter(order_line__order=order).values_list("product_id", flat=True))
        assert held == sorted([a.pk, b.pk])


def test_mixed_quantities_fill_the_shelf_exactly_without_oversell():
    # Shoppers want 1, 2 or 3 units of a 10-unit product: whatever wins, the sum of the
    # holds equals the reserved counter and never exceeds what is on hand.
    product = ProductFactory(on_hand=UNITS)
    wants = [1 + i % 3 for i in range(SHOPPERS)]
    users = _shoppers_with_carts(*[[(product, n)] for n in wants])

    def checkout(i: int) -> int:
        user = users[i]
        try:
            checkout_place_order(cart=cart_get_or_create(user=user), user=user, shipping_address=ADDRESS)
        except InsufficientStock:
            return 0
        return wants[i]

    outcomes = run_in_threads(checkout, SHOPPERS)

    assert all(isinstance(o, int) for o in outcomes), outcomes
    placed = sum(outcomes)
    stock = Stock.objects.get(product=product)
    assert placed == stock.reserved == _active_reserved(product)
    assert stock.reserved <= stock.on_hand == UNITS
    # Demand (100 units) far exceeds the shelf, so it is filled until fewer units remain
    # than the largest want (3): a lost update or a spurious refusal would leave more.
    assert placed >= UNITS - 2
