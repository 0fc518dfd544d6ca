"""Reservation expiry: the beat task releases holds past their TTL and cancels the orders."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.db import connections, transaction

from common.tests.factories import ProductFactory
from common.tests.helpers import place_order
from flows.order_paid import order_place_paid
from inventory.models import Reservation, Stock
from orders.models import Order, OrderStatusChange
from orders.tasks import expire_reservations
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _placed_at_t0(product, quantity=2) -> Order:
    with time_machine.travel(T0, tick=False):
        return place_order(product=product, quantity=quantity)


def _stock(product) -> tuple[int, int]:
    stock = Stock.objects.get(product=product)
    return stock.on_hand, stock.reserved


def test_the_task_is_scheduled_by_beat():
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert expire_reservations.name in scheduled


def test_nothing_expires_before_the_ttl(settings):
    product = ProductFactory(on_hand=10)
    order = _placed_at_t0(product)

    with time_machine.travel(T0 + settings.RESERVATION_TTL - timedelta(seconds=1), tick=False):
        expired = expire_reservations()

    assert expired == 0
    order.refresh_from_db()
    assert order.status == "pending_payment"
    assert Reservation.objects.get(order_line__order=order).status == "active"
    assert _stock(product) == (10, 2)
    assert not OutboxEvent.objects.filter(event_type="order.cancelled").exists()


@pytest.mark.parametrize("after", [timedelta(0), timedelta(seconds=1), timedelta(days=3)])
def test_a_reservation_past_its_ttl_is_released_and_its_order_cancelled(settings, after):
    product = ProductFactory(on_hand=10)
    order = _placed_at_t0(product)

    with time_machine.travel(T0 + settings.RESERVATION_TTL + after, tick=False):
        expired = expire_reservations()

    assert expired == 1
    order.refresh_from_db()
    assert (order.status, order.reservation_expires_at) == ("cancelled", None)
    assert Reservation.objects.get(order_line__order=order).status == "released"
    assert _stock(product) == (10, 0)
    change = OrderStatusChange.objects.filter(order=order).latest("id")
    assert (change.from_status, change.to_status, change.reason) == (
        "pending_payment",
        "cancelled",
        "reservation expired",
    )
    event = OutboxEvent.objects.get(event_type="order.cancelled")
    assert (event.aggregate_type, event.aggregate_id) == ("orders.order", str(order.pk))
    assert event.payload == {
        "order_id": order.pk,
        "from": "pending_payment",
        "to": "cancelled",
        "reason": "reservation expired",
    }


def test_expiry_runs_once(settings):
    product = ProductFactory(on_hand=10)
    _placed_at_t0(product)

    with time_machine.travel(T0 + settings.RESERVATION_TTL + timedelta(minutes=1), tick=False):
        first = expire_reservations()
        second = expire_reservations()

    assert (first, second) == (1, 0)
    assert OutboxEvent.objects.filter(event_type="order.cancelled").count() == 1
    assert _stock(product) == (10, 0)


def test_paid_orders_never_expire(settings, django_capture_on_commit_callbacks):
    product = ProductFactory(on_hand=10)
    order = _placed_at_t0(product)
    with django_capture_on_commit_callbacks(execute=False):
        order_place_paid(order_id=order.pk)

    with time_machine.travel(T0 + settings.RESERVATION_TTL + timedelta(hours=1), tick=False):
        expired = expire_reservations()

    assert expired == 0
    assert Order.objects.get(pk=order.pk).status == "paid"
    assert _stock(product) == (8, 0)


def test_expiry_works_through_every_batch(settings):
    settings.RESERVATION_EXPIRY_BATCH = 2
    product = ProductFactory(on_hand=20)
    orders = [_placed_at_t0(product) for _ in range(5)]
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        fresh = place_order(product=product, quantity=1)

    with time_machine.travel(T0 + settings.RESERVATION_TTL + timedelta(seconds=30), tick=False):
        expired = expire_reservations()

    assert expired == 5
    assert set(Order.objects.filter(status="cancelled").values_list("pk", flat=True)) == {o.pk for o in orders}
    assert Order.objects.get(pk=fresh.pk).status == "pending_payment"
    assert _stock(product) == (20, 1)


@pytest.mark.django_db(transaction=True)
def test_an_order_locked_elsewhere_is_skipped_then_expired_on_the_next_run(settings):
    product = ProductFactory(on_hand=10)
    busy, idle = _placed_at_t0(product, 1), _placed_at_t0(product, 1)
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        try:
            with transaction.atomic():
                Order.objects.select_for_update().get(pk=busy.pk)  # e.g. a payment being applied
                locked.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        with time_machine.travel(T0 + settings.RESERVATION_TTL + timedelta(seconds=1), tick=False):
            first = expire_reservations()
        statuses_meanwhile = dict(Order.objects.values_list("pk", "status"))
    finally:
        release.set()
        holder.join(timeout=30)

    with time_machine.travel(T0 + settings.RESERVATION_TTL + timedelta(seconds=40), tick=False):
        second = expire_reservations()

    assert (first, second) == (1, 1)
    assert statuses_meanwhile == {busy.pk: "pending_payment", idle.pk: "cancelled"}
    assert set(Order.objects.values_list("status", flat=True)) == {"cancelled"}
    assert _stock(product) == (10, 0)
