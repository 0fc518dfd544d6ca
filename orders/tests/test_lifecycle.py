"""The order's life after payment: processing, ship, deliver (services and admin), each
recorded and audited; illegal moves refused with nothing changed. Replaces the old
fulfil / manual refund (fulfilled maps to delivered; refunds go through the provider:
payments/tests/test_refunds.py)."""

import pytest
from django.urls import reverse

from common.errors import IllegalTransition, ValidationFailed
from common.models import AuditLogEntry
from common.tests.factories import StaffFactory
from common.tests.helpers import place_order
from flows.order_paid import order_place_paid
from orders.models import Order, OrderStatus, OrderStatusChange
from orders.services import order_cancel, order_deliver, order_ship, order_start_processing
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db


def _paid_order(django_capture_on_commit_callbacks) -> Order:
    order = place_order()
    with django_capture_on_commit_callbacks(execute=False):
        order_place_paid(order_id=order.pk)
    return Order.objects.get(pk=order.pk)


def _trace(order: Order) -> tuple:
    fresh = Order.objects.get(pk=order.pk)
    return (
        fresh.status,
        fresh.shipping_carrier,
        fresh.tracking_number,
        fresh.shipped_at,
        OrderStatusChange.objects.filter(order=order).count(),
        OutboxEvent.objects.filter(aggregate_type="orders.order", aggregate_id=str(order.pk)).count(),
    )


def test_paid_processing_shipped_delivered_each_recorded_with_its_event(django_capture_on_commit_callbacks):
    order = _paid_order(django_capture_on_commit_callbacks)
    clerk = StaffFactory()

    order_start_processing(order_id=order.pk, actor=clerk)
    order_ship(
        order_id=order.pk, carrier="DHL", tracking_number="JD01", tracking_url="https://dhl.example/JD01", actor=clerk
    )
    order_deliver(order_id=order.pk, actor=clerk)

    fresh = Order.objects.get(pk=order.pk)
    assert fresh.status == OrderStatus.DELIVERED
    assert (fresh.shipping_carrier, fresh.tracking_number, fresh.tracking_url) == (
        "DHL", "JD01", "https://dhl.example/JD01",
    )  # fmt: skip
    assert fresh.shipped_at is not None
    assert fresh.delivered_at is not None
    history = list(OrderStatusChange.objects.filter(order=order).values_list("from_status", "to_status", "actor"))
    assert history[-3:] == [
        ("paid", "processing", clerk.pk),
        ("processing", "shipped", clerk.pk),
        ("shipped", "delivered", clerk.pk),
    ]
    events = OutboxEvent.objects.filter(aggregate_id=str(order.pk)).values_list("event_type", flat=True)
    assert {"order.processing", "order.shipped", "order.delivered"} <= set(events)
    shipped = OutboxEvent.objects.get(event_type="order.shipped", aggregate_id=str(order.pk))
    assert shipped.payload["order_id"] == order.pk


def test_a_paid_order_ships_straight_from_paid(django_capture_on_commit_callbacks):
    order = _paid_order(django_capture_on_commit_callbacks)
    order_ship(order_id=order.pk, carrier="UPS", tracking_number="1Z")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SHIPPED


@pytest.mark.parametrize("state", ["pending_payment", "cancelled"])
def test_an_unpaid_or_cancelled_order_cannot_ship_and_nothing_changes(state):
    order = place_order()
    if state == "cancelled":
        order_cancel(order_id=order.pk, reason="test")
    before = _trace(order)

    with pytest.raises(IllegalTransition) as caught:
        order_ship(order_id=order.pk, carrier="DHL", tracking_number="X1")

    assert caught.value.code == "illegal_transition"
    assert caught.value.details == {"from": state, "to": "shipped"}
    assert _trace(order) == before


def test_deliver_needs_shipped_and_ship_needs_carrier_and_tracking(django_capture_on_commit_callbacks):
    order = _paid_order(django_capture_on_commit_callbacks)
    before = _trace(order)

    with pytest.raises(IllegalTransition):
        order_deliver(order_id=order.pk)
    with pytest.raises(ValidationFailed) as caught:
        order_ship(order_id=order.pk, carrier=" ", tracking_number="", tracking_url="javascript:alert(1)")

    assert set(caught.value.details) == {"carrier", "tracking_number", "tracking_url"}
    assert _trace(order) == before


def test_admin_ship_page_and_actions_transition_audit_and_refuse_illegal_ones(
    client, django_capture_on_commit_callbacks
):
    clerk = StaffFactory()
    client.force_login(clerk)
    paid = _paid_order(django_capture_on_commit_callbacks)
    unpaid = place_order()

    page = client.get(reverse("admin:orders_order_ship", args=[paid.pk]))
    assert page.status_code == 200
    response = client.post(
        reverse("admin:orders_order_ship", args=[paid.pk]),
        {"carrier": "DHL", "tracking_number": "JD02", "tracking_url": "https://dhl.example/JD02"},
        follow=True,
    )
    assert response.status_code == 200
    assert Order.objects.get(pk=paid.pk).status == OrderStatus.SHIPPED
    refused = client.post(
        reverse("admin:orders_order_ship", args=[unpaid.pk]), {"carrier": "DHL", "tracking_number": "J"}, follow=True
    )
    assert "Not shipped" in refused.content.decode()
    assert Order.objects.get(pk=unpaid.pk).status == OrderStatus.PENDING_PAYMENT

    response = client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "mark_delivered", "_selected_action": [paid.pk, unpaid.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert Order.objects.get(pk=paid.pk).status == OrderStatus.DELIVERED
    assert Order.objects.get(pk=unpaid.pk).status == OrderStatus.PENDING_PAYMENT
    assert "Not changed" in response.content.decode()
    audited = AuditLogEntry.objects.filter(action__in=["order.ship", "order.delivered"]).order_by("id")
    assert [(e.action, e.actor_id, e.target_id) for e in audited] == [
        ("order.ship", clerk.pk, str(paid.pk)),
        ("order.delivered", clerk.pk, str(paid.pk)),
    ]


def test_a_customer_without_staff_permissions_cannot_use_the_ship_page(client, django_capture_on_commit_callbacks):
    paid = _paid_order(django_capture_on_commit_callbacks)
    client.force_login(paid.user)
    response = client.post(reverse("admin:orders_order_ship", args=[paid.pk]), {"carrier": "D", "tracking_number": "1"})
    assert response.status_code == 302  # to the admin login
    assert Order.objects.get(pk=paid.pk).status == OrderStatus.PAID


def test_the_migration_maps_fulfilled_orders_to_delivered(django_capture_on_commit_callbacks):
    import importlib

    from django.apps import apps
    from django.db import connection

    order = _paid_order(django_capture_on_commit_callbacks)
    with connection.cursor() as cursor:  # the old schema's state (rolled back with the test)
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred FK checks pending on the table
        cursor.execute("ALTER TABLE orders_order DROP CONSTRAINT order_status_valid")
        cursor.execute("UPDATE orders_order SET status = 'fulfilled' WHERE id = %s", [order.pk])
    migration = importlib.import_module("orders.migrations.0003_lifecycle")

    migration.fulfilled_to_delivered(apps, None)

    fresh = Order.objects.get(pk=order.pk)
    assert fresh.status == OrderStatus.DELIVERED
    assert fresh.delivered_at == fresh.updated_at
