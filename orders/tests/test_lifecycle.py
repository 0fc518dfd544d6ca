import pytest
from django.urls import reverse

from common.errors import IllegalTransition
from common.models import AuditLogEntry
from common.tests.factories import StaffFactory
from common.tests.helpers import place_order
from flows.order_paid import order_place_paid
from orders.models import Order, OrderStatus, OrderStatusChange
from orders.services import order_fulfil, order_refund
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db


def _paid_order(django_capture_on_commit_callbacks) -> Order:
    order = place_order()
    with django_capture_on_commit_callbacks(execute=False):
        order_place_paid(order_id=order.pk)
    return Order.objects.get(pk=order.pk)


def test_fulfil_and_refund_move_a_paid_order_and_record_it(django_capture_on_commit_callbacks):
    shipped = _paid_order(django_capture_on_commit_callbacks)
    returned = _paid_order(django_capture_on_commit_callbacks)

    order_fulfil(order_id=shipped.pk)
    order_refund(order_id=returned.pk)

    assert Order.objects.get(pk=shipped.pk).status == OrderStatus.FULFILLED
    assert Order.objects.get(pk=returned.pk).status == OrderStatus.REFUNDED
    assert OutboxEvent.objects.filter(event_type="order.fulfilled", aggregate_id=str(shipped.pk)).count() == 1
    assert OutboxEvent.objects.filter(event_type="order.refunded", aggregate_id=str(returned.pk)).count() == 1


def test_unpaid_order_cannot_be_fulfilled_or_refunded_and_nothing_changes():
    order = place_order()
    changes = OrderStatusChange.objects.count()
    events = OutboxEvent.objects.count()

    with pytest.raises(IllegalTransition):
        order_fulfil(order_id=order.pk)
    with pytest.raises(IllegalTransition):
        order_refund(order_id=order.pk)

    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT
    assert OrderStatusChange.objects.count() == changes
    assert OutboxEvent.objects.count() == events


def test_admin_actions_transition_audit_and_refuse_illegal_ones(client, django_capture_on_commit_callbacks):
    clerk = StaffFactory()
    client.force_login(clerk)
    paid = _paid_order(django_capture_on_commit_callbacks)
    unpaid = place_order()

    response = client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "mark_fulfilled", "_selected_action": [paid.pk, unpaid.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert Order.objects.get(pk=paid.pk).status == OrderStatus.FULFILLED
    assert Order.objects.get(pk=unpaid.pk).status == OrderStatus.PENDING_PAYMENT
    assert "Not changed" in response.content.decode()
    entries = AuditLogEntry.objects.filter(action="order.fulfilled")
    assert [(e.actor_id, e.target_id) for e in entries] == [(clerk.pk, str(paid.pk))]
