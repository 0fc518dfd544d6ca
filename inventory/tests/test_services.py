import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from common.errors import ValidationFailed
from common.tests.factories import ProductFactory
from common.tests.helpers import place_order
from inventory.models import Reservation, ReservationStatus, Stock
from inventory.selectors import products_for_sale
from inventory.services import InsufficientStock, reservations_commit, reservations_release, stock_reserve

pytestmark = pytest.mark.django_db


def _stock(product) -> tuple[int, int]:
    stock = Stock.objects.get(product=product)
    return stock.on_hand, stock.reserved


def test_reserve_holds_exactly_the_requested_units():
    a, b = ProductFactory(on_hand=10), ProductFactory(on_hand=3)

    with transaction.atomic():
        stock_reserve(quantities={a.pk: 4, b.pk: 3})

    assert _stock(a) == (10, 4)
    assert _stock(b) == (3, 3)


def test_reserve_is_all_or_nothing_and_names_every_short_sku():
    plenty, short_1, short_2 = ProductFactory(on_hand=10), ProductFactory(on_hand=1), ProductFactory(on_hand=0)

    with pytest.raises(InsufficientStock) as caught, transaction.atomic():
        stock_reserve(quantities={plenty.pk: 2, short_1.pk: 2, short_2.pk: 1})

    assert caught.value.status_code == 409
    assert caught.value.code == "insufficient_stock"
    assert caught.value.details == {
        "skus": sorted([short_1.sku, short_2.sku]),
        "lines": sorted(
            [
                {"sku": short_1.sku, "requested": 2, "available": 1},
                {"sku": short_2.sku, "requested": 1, "available": 0},
            ],
            key=lambda line: line["sku"],
        ),
    }
    # The caller's transaction rolled back: the hold on `plenty` went with it.
    assert _stock(plenty) == (10, 0)
    assert _stock(short_1) == (1, 0)
    assert _stock(short_2) == (0, 0)


def test_reserve_exactly_the_available_units_succeeds_and_one_more_fails():
    product = ProductFactory(on_hand=5)
    with transaction.atomic():
        stock_reserve(quantities={product.pk: 2})

    with transaction.atomic():
        stock_reserve(quantities={product.pk: 3})
    with pytest.raises(InsufficientStock), transaction.atomic():
        stock_reserve(quantities={product.pk: 1})

    assert _stock(product) == (5, 5)


@pytest.mark.parametrize("quantity", [0, -1])
def test_reserve_refuses_non_positive_quantities(quantity):
    product = ProductFactory(on_hand=5)

    with pytest.raises(ValidationFailed), transaction.atomic():
        stock_reserve(quantities={product.pk: quantity})

    assert _stock(product) == (5, 0)


@pytest.mark.django_db(transaction=True)
def test_reserve_refuses_to_run_outside_a_transaction():
    product = ProductFactory(on_hand=5)

    with pytest.raises(RuntimeError, match=r"inside transaction\.atomic"):
        stock_reserve(quantities={product.pk: 1})

    assert _stock(product) == (5, 0)


def test_database_refuses_reserved_above_on_hand():
    product = ProductFactory(on_hand=2)

    with pytest.raises(IntegrityError), transaction.atomic():
        Stock.objects.filter(product=product).update(reserved=F("on_hand") + 1)

    assert _stock(product) == (2, 0)


def test_database_refuses_negative_reserved():
    product = ProductFactory(on_hand=2)

    with pytest.raises(IntegrityError), transaction.atomic():
        Stock.objects.filter(product=product).update(reserved=-1)

    assert _stock(product) == (2, 0)


def test_checkout_records_one_active_reservation_per_line():
    product = ProductFactory(on_hand=10)

    order = place_order(product=product, quantity=3)

    reservation = Reservation.objects.get(order_line__order=order)
    assert (reservation.product_id, reservation.quantity, reservation.status) == (product.pk, 3, "active")
    assert reservation.expires_at == order.reservation_expires_at
    assert _stock(product) == (10, 3)


def test_commit_turns_holds_into_sales():
    product = ProductFactory(on_hand=10)
    order = place_order(product=product, quantity=3)

    with transaction.atomic():
        committed = reservations_commit(order_id=order.pk)

    assert committed == 1
    assert _stock(product) == (7, 0)
    assert Reservation.objects.get(order_line__order=order).status == ReservationStatus.COMMITTED


def test_release_gives_holds_back_once():
    product = ProductFactory(on_hand=10)
    order = place_order(product=product, quantity=3)

    with transaction.atomic():
        first = reservations_release(order_id=order.pk)
    with transaction.atomic():
        second = reservations_release(order_id=order.pk)

    assert (first, second) == (1, 0)
    assert _stock(product) == (10, 0)
    assert Reservation.objects.get(order_line__order=order).status == ReservationStatus.RELEASED


def test_commit_after_release_changes_nothing():
    product = ProductFactory(on_hand=10)
    order = place_order(product=product, quantity=3)
    with transaction.atomic():
        reservations_release(order_id=order.pk)

    with transaction.atomic():
        committed = reservations_commit(order_id=order.pk)

    assert committed == 0
    assert _stock(product) == (10, 0)
    assert Reservation.objects.get(order_line__order=order).status == ReservationStatus.RELEASED


def test_products_for_sale_annotates_available_and_hides_inactive():
    on_sale = ProductFactory(on_hand=10, name="A on sale")
    ProductFactory(on_hand=10, name="B withdrawn", is_active=False)
    place_order(product=on_sale, quantity=4)

    rows = list(products_for_sale())

    assert [(p.sku, p.available) for p in rows] == [(on_sale.sku, 6)]


def test_products_for_sale_is_one_query_whatever_the_catalog_size(django_assert_num_queries):
    for _ in range(5):
        ProductFactory(on_hand=3)

    with django_assert_num_queries(1):
        assert [p.available for p in products_for_sale()] == [3] * 5
