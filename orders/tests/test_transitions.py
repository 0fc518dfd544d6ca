"""The order state machine: the transition table, its records, and races on one order."""

from collections import Counter
from itertools import product as pairs

import pytest
from django.db import transaction

from common.errors import IllegalTransition
from common.tests.factories import ProductFactory, StaffFactory
from common.tests.helpers import place_order, run_in_threads
from flows.order_paid import order_place_paid
from inventory.models import Reservation, Stock
from invoicing.models import Invoice
from orders.models import ALLOWED_TRANSITIONS, Order, OrderStatus, OrderStatusChange
from orders.services import order_cancel, order_transition
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db

STATUSES = list(OrderStatus.values)
LEGAL = [(a, b) for a, b in pairs(STATUSES, STATUSES) if b in ALLOWED_TRANSITIONS[a]]
ILLEGAL = [(a, b) for a, b in pairs(STATUSES, STATUSES) if b not in ALLOWED_TRANSITIONS[a]]


def _order_in(status: str) -> Order:
    order = place_order()
    Order.objects.filter(pk=order.pk).update(status=status)  # arrange: put it there directly
    order.refresh_from_db()
    return order


def _trace(order: Order) -> tuple[str, int, int]:
    return (
        Order.objects.get(pk=order.pk).status,
        OrderStatusChange.objects.filter(order=order).count(),
        OutboxEvent.objects.filter(aggregate_type="orders.order", aggregate_id=str(order.pk)).count(),
    )


def test_the_table_is_the_designs():
    assert {a: sorted(b) for a, b in ALLOWED_TRANSITIONS.items()} == {
        "pending_payment": ["cancelled", "paid"],
        "paid": ["cancelled", "partially_refunded", "processing", "refunded", "shipped"],
        "processing": ["cancelled", "partially_refunded", "refunded", "shipped"],
        "shipped": ["delivered", "partially_refunded", "refunded"],
        "delivered": ["partially_refunded", "refunded"],
        "partially_refunded": ["cancelled", "delivered", "partially_refunded", "processing", "refunded", "shipped"],
        "cancelled": [],
        "refunded": [],
    }
    assert len(LEGAL) == 22
    assert len(ILLEGAL) == 64 - 22


@pytest.mark.parametrize(("from_status", "to_status"), ILLEGAL)
def test_an_illegal_transition_raises_and_changes_nothing(from_status, to_status):
    order = _order_in(from_status)
    before = _trace(order)

    with pytest.raises(IllegalTransition) as caught:
        order_transition(order=order, to=to_status, reason="test")

    assert caught.value.status_code == 409
    assert caught.value.code == "illegal_transition"
    assert caught.value.details == {"from": from_status, "to": to_status}
    assert order.status == from_status
    assert _trace(order) == before


@pytest.mark.parametrize(("from_status", "to_status"), LEGAL)
def test_a_legal_transition_is_recorded_with_its_event(from_status, to_status):
    order = _order_in(from_status)
    staff = StaffFactory()
    _, changes_before, events_before = _trace(order)

    order_transition(order=order, to=to_status, reason="because", actor=staff)

    assert _trace(order) == (to_status, changes_before + 1, events_before + 1)
    change = OrderStatusChange.objects.filter(order=order).latest("id")
    assert (change.from_status, change.to_status, change.reason, change.actor) == (
        from_status, to_status, "because", staff,
    )  # fmt: skip
    event = OutboxEvent.objects.filter(aggregate_id=str(order.pk)).latest("id")
    assert event.event_type == f"order.{to_status}"
    assert event.payload == {"order_id": order.pk, "from": from_status, "to": to_status, "reason": "because"}


def test_a_stale_order_object_cannot_move_an_order_that_moved_meanwhile():
    order = place_order()
    stale = Order.objects.get(pk=order.pk)
    order_transition(order=order, to=OrderStatus.CANCELLED, reason="first")
    before = _trace(order)

    with pytest.raises(IllegalTransition) as caught:
        order_transition(order=stale, to=OrderStatus.PAID, reason="second")

    assert caught.value.details == {"from": "cancelled", "to": "paid"}
    assert _trace(order) == before


def test_a_failure_after_the_transition_rolls_it_back_with_its_event():
    order = place_order()
    before = _trace(order)

    def pay_then_fail() -> None:
        with transaction.atomic():
            order_transition(order=Order.objects.get(pk=order.pk), to=OrderStatus.PAID)
            raise RuntimeError("the rest of the caller's transaction failed")

    with pytest.raises(RuntimeError):
        pay_then_fail()

    assert _trace(order) == before


def test_mark_paid_commits_stock_and_creates_the_invoice(django_capture_on_commit_callbacks):
    product = ProductFactory(on_hand=10)
    order = place_order(product=product, quantity=3)

    with django_capture_on_commit_callbacks(execute=False):
        order_place_paid(order_id=order.pk)

    order.refresh_from_db()
    assert (order.status, order.reservation_expires_at) == ("paid", None)
    assert order.placed_at is not None
    assert (Stock.objects.get(product=product).on_hand, Stock.objects.get(product=product).reserved) == (7, 0)
    assert Reservation.objects.get(order_line__order=order).status == "committed"
    assert Invoice.objects.get(order=order).status == "pending"


def test_mark_paid_of_a_cancelled_order_changes_nothing():
    product = ProductFactory(on_hand=10)
    order = place_order(product=product, quantity=3)
    order_cancel(order_id=order.pk, reason="shopper gave up")
    before = _trace(order)

    with pytest.raises(IllegalTransition):
        order_place_paid(order_id=order.pk)

    assert _trace(order) == before
    assert not Invoice.objects.filter(order=order).exists()
    stock = Stock.objects.get(product=product)
    assert (stock.on_hand, stock.reserved) == (10, 0)
    assert Reservation.objects.get(order_line__order=order).status == "released"


def test_cancel_of_a_paid_order_changes_nothing(django_capture_on_commit_callbacks):
    product = ProductFactory(on_hand=10)
    order = place_order(product=product, quantity=3)
    with django_capture_on_commit_callbacks(execute=False):
        order_place_paid(order_id=order.pk)
    before = _trace(order)

    with pytest.raises(IllegalTransition):
        order_cancel(order_id=order.pk, reason="too late")

    assert _trace(order) == before
    stock = Stock.objects.get(product=product)
    assert (stock.on_hand, stock.reserved) == (7, 0)


@pytest.mark.django_db(transaction=True)
def test_concurrent_transitions_of_one_order_exactly_one_wins():
    order = place_order()
    targets = [OrderStatus.PAID if i % 2 else OrderStatus.CANCELLED for i in range(16)]
    # Every thread saw it pending (read before the race: paid -> cancelled is itself legal,
    # for a staff cancel by refund, so a thread reading after the winner could move on).
    seen = [Order.objects.get(pk=order.pk) for _ in targets]

    def move(i: int) -> str:
        mine = seen[i]
        try:
            order_transition(order=mine, to=targets[i], reason=f"thread {i}")
        except IllegalTransition:
            return "refused"
        return f"moved to {targets[i]}"

    outcomes = run_in_threads(move, len(targets))

    counts = Counter(outcomes)
    assert counts["refused"] == 15, outcomes
    assert sum(counts.values()) == 16
    final = Order.objects.get(pk=order.pk).status
    assert counts[f"moved to {final}"] == 1
    assert list(OrderStatusChange.objects.filter(order=order).values_list("from_status", "to_status")) == [
        ("", "pending_payment"),
        ("pending_payment", final),
    ]
    assert list(
        OutboxEvent.objects.filter(aggregate_id=str(order.pk)).order_by("id").values_list("event_type", flat=True)
    ) == ["order.created", f"order.{final}"]


@pytest.mark.django_db(transaction=True)
def test_payment_racing_cancellation_leaves_stock_consistent():
    product = ProductFactory(on_hand=10)
    order = place_order(product=product, quantity=4)

    def act(i: int) -> str:
        try:
            if i % 2:
                order_place_paid(order_id=order.pk)
            else:
                order_cancel(order_id=order.pk, reason="race")
        except IllegalTransition:
            return "refused"
        return "paid" if i % 2 else "cancelled"

    outcomes = run_in_threads(act, 8)

    final = Order.objects.get(pk=order.pk).status
    assert Counter(outcomes) == {final: 1, "refused": 7}
    stock = Stock.objects.get(product=product)
    reservation = Reservation.objects.get(order_line__order=order)
    if final == "paid":
        assert ((stock.on_hand, stock.reserved), reservation.status) == ((6, 0), "committed")
        assert Invoice.objects.filter(order=order).count() == 1
    else:
        assert ((stock.on_hand, stock.reserved), reservation.status) == ((10, 0), "released")
        assert not Invoice.objects.filter(order=order).exists()
