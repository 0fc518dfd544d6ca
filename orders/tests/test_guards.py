"""Guards no other test proves: each test here fails when its one guard is removed.

1. payment_attempt_create locks the order before it reads its status and writes the attempt.
2. order_expirable leaves out orders with a processing attempt (else the expiry loop spins).
3. orders_expire_unpaid re-reads the processing attempts of the batch it has just locked.
"""

import random
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from common.errors import IllegalTransition
from common.tests.factories import ProductFactory
from common.tests.helpers import place_order, run_in_threads
from inventory.models import Reservation, Stock
from orders import services as order_services
from orders.models import Order, OrderStatus
from orders.services import orders_expire_unpaid
from payments.models import PaymentAttempt, PaymentStatus
from payments.services import payment_attempt_create

ROUNDS = 30
# What one expiry run may cost here, in SQL statements; the correct run needs far fewer.
STATEMENT_BUDGET = 100


def _after_the_ttl() -> datetime:
    """A `now` for the expiry at which every order placed in the test has run out, while the
    payment service (which checks the real clock) still takes them."""
    return timezone.now() + settings.RESERVATION_TTL + timedelta(minutes=1)


def _paying_but_cancelled() -> list[int]:
    return list(
        Order.objects.filter(status=OrderStatus.CANCELLED, payment_attempts__status=PaymentStatus.PROCESSING)
        .values_list("pk", flat=True)
        .distinct()
    )


def _states() -> dict[int, tuple[str, list[str]]]:
    """order id -> (status, statuses of its attempts), over the whole table."""
    return {
        order.pk: (order.status, [attempt.status for attempt in order.payment_attempts.all()])
        for order in Order.objects.prefetch_related("payment_attempts")
    }


@pytest.mark.django_db(transaction=True)
def test_a_payment_racing_the_expiry_never_leaves_a_processing_attempt_on_a_cancelled_order():
    """Guard 1: payment_attempt_create takes the order lock before it reads the status.

    Each round, a fresh order past its TTL (for the expiry) is raced by a payment and by the
    expiry, released together by a barrier. With a plain read instead of the lock, the
    payment reads pending_payment, the expiry locks the order (nothing holds it yet) and
    cancels it, and the payment's attempt, whose insert at most waits for that commit on the
    foreign key, lands on the cancelled order: most rounds end that way."""
    product = ProductFactory(on_hand=ROUNDS)
    later = _after_the_ttl()
    rounds = []

    for _ in range(ROUNDS):
        # The only order the expiry sees: earlier ones are cancelled or have an attempt.
        order = place_order(product=product)

        def race(i: int, order: Order = order) -> Any:
            # A few ms of jitter after the barrier, so that neither side always gets there
            # first (a quiet machine otherwise lets the payment win every round).
            time.sleep(random.uniform(0, 0.006))
            if i == 0:
                return payment_attempt_create(order_id=order.pk, user=order.user)
            return orders_expire_unpaid(now=later)

        payment, expired = run_in_threads(race, 2, timeout=30)
        rounds.append((order.pk, payment, expired))

    assert _paying_but_cancelled() == []
    expected = {}
    for order_id, payment, expired in rounds:
        if isinstance(payment, PaymentAttempt):  # the payment won: the expiry skipped the locked order
            assert expired == 0
            expected[order_id] = (OrderStatus.PENDING_PAYMENT, [PaymentStatus.PROCESSING])
        else:  # the expiry won: the payment found the order cancelled and wrote nothing
            assert isinstance(payment, IllegalTransition), payment
            assert expired == 1
            expected[order_id] = (OrderStatus.CANCELLED, [])
    assert _states() == expected
    pending = sum(1 for status, _ in expected.values() if status == OrderStatus.PENDING_PAYMENT)
    assert Stock.objects.get(product=product).reserved == pending
    # Both sides won some rounds: the race was really run, not one ordering thirty times.
    assert {status for status, _ in expected.values()} == {OrderStatus.PENDING_PAYMENT, OrderStatus.CANCELLED}


@pytest.mark.django_db
def test_a_full_batch_of_orders_being_paid_does_not_stall_the_expiry():
    """Guard 2: order_expirable leaves out orders whose payment attempt is processing.

    Without it the first batch is made only of such orders: locked, filtered out in Python,
    and since the batch was full the loop asks again for the same rows, forever (the order
    behind them is never reached). A statement budget on this connection turns that loop
    into a failure instead of a hung suite."""
    product = ProductFactory(on_hand=10)
    paying = [place_order(product=product) for _ in range(5)]
    for order in paying:
        payment_attempt_create(order_id=order.pk, user=order.user)
    behind = place_order(product=product)  # expires after all of them
    statements = 0

    def budget(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        nonlocal statements
        statements += 1
        if statements == STATEMENT_BUDGET + 1:  # once: the rollback that follows must run
            raise AssertionError(f"the expiry ran over {STATEMENT_BUDGET} statements: its loop does not advance")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(budget):
        expired = orders_expire_unpaid(now=_after_the_ttl(), batch_size=2)

    assert expired == 1
    assert statements <= STATEMENT_BUDGET
    assert _states() == {
        **{order.pk: (OrderStatus.PENDING_PAYMENT, [PaymentStatus.PROCESSING]) for order in paying},
        behind.pk: (OrderStatus.CANCELLED, []),
    }
    assert set(Reservation.objects.filter(order_line__order__in=paying).values_list("status", flat=True)) == {"active"}
    assert Stock.objects.get(product=product).reserved == len(paying)


@pytest.mark.django_db(transaction=True)
def test_the_expiry_spares_an_order_whose_attempt_its_locking_statement_could_not_see(monkeypatch):
    """Guard 3: after locking a batch, the expiry re-reads which orders have a processing attempt.

    The race: a payment holding the order lock commits its attempt after the expiry's
    SELECT ... FOR UPDATE SKIP LOCKED took its snapshot (so its NOT EXISTS saw no attempt)
    and before that same statement reached the row (the lock is free by then, so nothing is
    skipped). A payment still holding the lock when the row is reached is skipped, never
    waited for, so no test can hold the expiry inside that window; and once the batch is
    locked no other transaction can add an attempt to it (the attempt's foreign-key check
    needs a KEY SHARE lock on the order). So the seam runs at the first point after the
    window, and the payment is made there, through the real service, in the expiry's own
    transaction. The state it leaves is the race's outcome: a locked order that the locking
    statement took for idle, with a processing attempt that any new statement sees."""
    product = ProductFactory(on_hand=10)
    paid_late, idle = place_order(product=product), place_order(product=product)
    locked_batches: list[list[int]] = []

    def payment_lands(batch: list[int]) -> None:
        locked_batches.append(batch)
        if len(locked_batches) == 1:
            payment_attempt_create(order_id=paid_late.pk, user=paid_late.user)

    monkeypatch.setattr(order_services, "_after_expiry_batch_locked", payment_lands)

    expired = orders_expire_unpaid(now=_after_the_ttl())

    assert locked_batches == [[paid_late.pk, idle.pk]]
    assert expired == 1
    assert _states() == {
        paid_late.pk: (OrderStatus.PENDING_PAYMENT, [PaymentStatus.PROCESSING]),
        idle.pk: (OrderStatus.CANCELLED, []),
    }
    assert Order.objects.get(pk=paid_late.pk).reservation_expires_at == paid_late.reservation_expires_at
    assert Reservation.objects.get(order_line__order=paid_late).status == "active"
    assert Stock.objects.get(product=product).reserved == 1
