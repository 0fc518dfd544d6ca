from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from common.errors import IllegalTransition, NotFound, ValidationFailed
from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import place_order
from flows.order_paid import order_place_paid
from inventory.models import Reservation, ReservationStatus, Stock
from orders.models import Order, OrderStatus
from orders.services import order_cancel, orders_expire_unpaid
from outbox.models import OutboxEvent
from payments.models import FailureCode, PaymentAttempt, PaymentStatus
from payments.services import (
    PaymentInProgress,
    ReservationExpired,
    payment_attempt_create,
    payment_attempt_request_cancel,
    payment_attempt_request_charge,
    payment_attempts_fail_stale,
)
from payments.tests.helpers import attempt_for, record_delivery_kicks

pytestmark = pytest.mark.django_db


@pytest.fixture
def deliveries(monkeypatch):
    """What the simulated provider was asked to play (the Celery task is not run here)."""
    return record_delivery_kicks(monkeypatch)


def _events(event_type: str) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(event_type=event_type).order_by("id"))


def test_attempt_with_a_method_is_processing_for_the_order_total_and_charged_after_commit(
    deliveries, django_capture_on_commit_callbacks
):
    order = place_order(product=ProductFactory(price=Decimal("12.50")), quantity=2)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        attempt = payment_attempt_create(order_id=order.pk, user=order.user, payment_method="pm_card_success")

    assert (attempt.order_id, attempt.amount, attempt.currency) == (order.pk, order.total, "EUR")
    assert attempt.status == PaymentStatus.PROCESSING
    assert attempt.provider == "simulated"
    assert attempt.provider_reference.startswith("sim_pi_")
    assert attempt.payment_method == "pm_card_success"
    assert attempt.charge_requested_at is not None
    assert attempt.redirect_url == ""
    assert attempt.completed_at is None
    assert len(callbacks) == 3  # the charge, the outbox relay kick, and the charge's first delivery kick
    assert [(d["attempt_id"], d["script"], d["step"]) for d in deliveries] == [(attempt.pk, "pm_card_success", 0)]
    [created] = _events("payment.created")
    assert created.payload["attempt_id"] == attempt.pk
    assert created.payload["amount"] == str(order.total)


def test_attempt_without_a_method_waits_for_the_shopper_on_the_hosted_page(
    deliveries, django_capture_on_commit_callbacks
):
    order = place_order()

    with django_capture_on_commit_callbacks(execute=True):
        attempt = payment_attempt_create(order_id=order.pk, user=order.user)

    assert attempt.redirect_url == f"/payments/simulated/{attempt.provider_reference}/"
    assert attempt.charge_requested_at is None
    assert attempt.awaiting_customer
    assert deliveries == []


def test_choosing_a_method_on_the_hosted_page_charges_once(deliveries, django_capture_on_commit_callbacks):
    order = place_order()
    attempt = payment_attempt_create(order_id=order.pk, user=order.user)

    with django_capture_on_commit_callbacks(execute=True):
        payment_attempt_request_charge(attempt_id=attempt.pk, payment_method="pm_card_declined")
    with django_capture_on_commit_callbacks(execute=True) as second:
        again = payment_attempt_request_charge(attempt_id=attempt.pk, payment_method="pm_card_success")

    assert second == []
    assert again.payment_method == "pm_card_declined"
    assert [(d["attempt_id"], d["script"]) for d in deliveries] == [(attempt.pk, "pm_card_declined")]


def test_cancel_on_the_hosted_page_asks_the_provider_to_report_a_failure(
    deliveries, django_capture_on_commit_callbacks
):
    order = place_order()
    attempt = payment_attempt_create(order_id=order.pk, user=order.user)

    with django_capture_on_commit_callbacks(execute=True):
        payment_attempt_request_cancel(attempt_id=attempt.pk)
    with django_capture_on_commit_callbacks(execute=True):
        payment_attempt_request_charge(attempt_id=attempt.pk, payment_method="pm_card_success")

    assert [(d["attempt_id"], d["script"]) for d in deliveries] == [(attempt.pk, "cancel")]
    attempt.refresh_from_db()
    assert attempt.status == PaymentStatus.PROCESSING  # until the provider's webhook says failed
    assert attempt.payment_method == ""


def test_unknown_payment_method_is_refused_before_anything_is_written():
    order = place_order()

    with pytest.raises(ValidationFailed) as exc:
        payment_attempt_create(order_id=order.pk, user=order.user, payment_method="pm_card_gold")

    assert "payment_method" in exc.value.details
    assert not PaymentAttempt.objects.exists()


@pytest.mark.parametrize("status", [OrderStatus.PAID, OrderStatus.CANCELLED])
def test_only_an_order_awaiting_payment_can_be_paid(status, django_capture_on_commit_callbacks):
    order = place_order()
    with django_capture_on_commit_callbacks(execute=False):
        if status == OrderStatus.PAID:
            order_place_paid(order_id=order.pk)
        else:
            order_cancel(order_id=order.pk, reason="test")
    events_before = OutboxEvent.objects.count()

    with pytest.raises(IllegalTransition) as exc:
        attempt_for(order)

    assert exc.value.status_code == 409
    assert exc.value.code == "illegal_transition"
    assert exc.value.details == {"order_id": order.pk, "status": status}
    assert not PaymentAttempt.objects.exists()
    assert OutboxEvent.objects.count() == events_before


def test_someone_elses_order_is_not_found():
    order = place_order()

    with pytest.raises(NotFound):
        payment_attempt_create(order_id=order.pk, user=UserFactory(), payment_method="pm_card_success")
    with pytest.raises(NotFound):
        payment_attempt_create(order_id=999_999, user=order.user, payment_method="pm_card_success")

    assert not PaymentAttempt.objects.exists()


def test_an_order_whose_reservation_ran_out_cannot_be_paid():
    order = place_order()
    Order.objects.filter(pk=order.pk).update(reservation_expires_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(ReservationExpired) as exc:
        attempt_for(order)

    assert exc.value.status_code == 409
    assert not PaymentAttempt.objects.exists()


def test_one_processing_attempt_per_order_then_a_new_one_after_failure():
    order = place_order()
    first = attempt_for(order)

    with pytest.raises(PaymentInProgress) as exc:
        attempt_for(order, payment_method="pm_card_declined")
    assert exc.value.status_code == 409
    assert exc.value.details["attempt_id"] == first.pk
    assert PaymentAttempt.objects.count() == 1

    PaymentAttempt.objects.filter(pk=first.pk).update(
        status=PaymentStatus.FAILED, failure_code=FailureCode.PROVIDER, completed_at=timezone.now()
    )
    second = attempt_for(order)
    assert second.pk != first.pk
    assert second.status == PaymentStatus.PROCESSING


def test_the_database_allows_one_processing_attempt_per_order():
    order = place_order()
    attempt = attempt_for(order)

    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentAttempt.objects.create(
            order=order, amount=attempt.amount, currency="EUR", provider_reference="sim_pi_other"
        )


def test_a_second_attempt_while_one_processes_is_a_clean_conflict():
    """The partial unique index is the check (no SELECT before the INSERT): its
    IntegrityError becomes a 409 naming the attempt in progress, and nothing is written."""
    order = place_order()
    first = attempt_for(order)

    with pytest.raises(PaymentInProgress) as exc:
        attempt_for(order)

    assert exc.value.details["attempt_id"] == first.pk
    assert list(PaymentAttempt.objects.values_list("pk", flat=True)) == [first.pk]
    assert OutboxEvent.objects.filter(event_type="payment.created").count() == 1


def test_attempts_stuck_in_processing_past_the_timeout_are_failed():
    stale_order, fresh_order = place_order(), place_order()
    stale, fresh = attempt_for(stale_order), attempt_for(fresh_order)
    PaymentAttempt.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(seconds=301))
    PaymentAttempt.objects.filter(pk=fresh.pk).update(created_at=timezone.now() - timedelta(seconds=299))

    assert payment_attempts_fail_stale(timeout_s=300) == 1
    assert payment_attempts_fail_stale(timeout_s=300) == 0

    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == PaymentStatus.FAILED
    assert stale.failure_code == FailureCode.TIMEOUT
    assert stale.failure_reason == "No result from the payment provider within 300 seconds."
    assert stale.completed_at is not None
    assert fresh.status == PaymentStatus.PROCESSING
    [failed] = _events("payment.failed")
    assert failed.payload["attempt_id"] == stale.pk
    stale_order.refresh_from_db()
    assert stale_order.status == OrderStatus.PENDING_PAYMENT  # payable again while reserved


def test_reservation_expiry_skips_orders_with_a_processing_attempt_until_it_fails():
    product = ProductFactory(on_hand=5)
    order = place_order(product=product, quantity=2)
    attempt = attempt_for(order)
    Order.objects.filter(pk=order.pk).update(reservation_expires_at=timezone.now() - timedelta(minutes=1))

    assert orders_expire_unpaid() == 0
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert Stock.objects.get(product=product).reserved == 2

    PaymentAttempt.objects.filter(pk=attempt.pk).update(created_at=timezone.now() - timedelta(hours=1))
    assert payment_attempts_fail_stale(timeout_s=60) == 1
    assert orders_expire_unpaid() == 1

    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert Stock.objects.get(product=product).reserved == 0
    assert set(Reservation.objects.filter(order_line__order=order).values_list("status", flat=True)) == {
        ReservationStatus.RELEASED
    }
