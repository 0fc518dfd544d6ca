"""The order page: its timeline from the recorded history and the shopper's Cancel button."""

import pytest

from common.tests.factories import ProductFactory, StaffFactory
from common.tests.helpers import place_order
from inventory.models import Stock
from orders.models import Order, OrderStatus
from orders.services import order_deliver, order_ship
from payments.refunds import refund_create
from payments.tests.helpers import attempt_for, post_webhook
from payments.tests.test_refunds import paid_order, refund_event

pytestmark = pytest.mark.django_db


def test_the_timeline_tells_placed_paid_shipped_with_tracking_delivered_and_refunds(client):
    order = paid_order(client)
    order_ship(order_id=order.pk, carrier="DHL", tracking_number="JD77", tracking_url="https://dhl.example/JD77")
    order_deliver(order_id=order.pk)
    refund = refund_create(order_id=order.pk, reason="late", amount="2.00")
    post_webhook(client, refund_event(refund, "refund.succeeded"))
    client.force_login(order.user)

    html = client.get(f"/orders/{order.pk}/").content.decode()

    kinds = ["placed", "paid", "shipped", "delivered", "refund_requested", "refund_succeeded"]
    positions = [html.index(f'data-testid="timeline-{kind}"') for kind in kinds]
    assert positions == sorted(positions)
    assert "DHL, tracking JD77" in html
    assert 'href="https://dhl.example/JD77"' in html
    assert "Refunded 2.00 EUR" in html
    assert 'id="cancel-order"' not in html  # paid: no shopper cancel


def test_the_shopper_cancels_an_unpaid_order_with_the_button(client):
    product = ProductFactory(on_hand=4)
    order = place_order(product=product, quantity=3)
    client.force_login(order.user)
    page = client.get(f"/orders/{order.pk}/").content.decode()
    assert 'id="cancel-order"' in page
    assert f'action="/orders/{order.pk}/cancel/"' in page

    response = client.post(f"/orders/{order.pk}/cancel/", follow=True)

    assert response.status_code == 200
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    assert Stock.objects.get(product=product).reserved == 0
    html = response.content.decode()
    assert "is cancelled" in html
    assert 'data-testid="timeline-cancelled"' in html
    assert 'id="cancel-order"' not in html


def test_the_cancel_button_is_hidden_and_refused_while_a_payment_is_processing(client):
    order = place_order()
    attempt_for(order)
    client.force_login(order.user)

    assert 'id="cancel-order"' not in client.get(f"/orders/{order.pk}/").content.decode()
    response = client.post(f"/orders/{order.pk}/cancel/", follow=True)

    assert "being processed" in response.content.decode()
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT


def test_cancel_page_refuses_get_other_customers_and_staff(client):
    order = place_order()
    client.force_login(order.user)
    assert client.get(f"/orders/{order.pk}/cancel/").status_code == 405
    client.force_login(StaffFactory())  # staff cancel in the admin or the API, not on the shop page
    assert client.post(f"/orders/{order.pk}/cancel/").status_code == 404
    client.force_login(place_order().user)
    assert client.post(f"/orders/{order.pk}/cancel/").status_code == 404
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT


def test_a_cancelled_order_paid_and_refunded_reads_refunded(client):
    order = paid_order(client)
    from flows.order_cancel import order_cancel_by

    order_cancel_by(order_id=order.pk, actor=StaffFactory(), staff=True)
    post_webhook(client, refund_event(order.refunds.get(), "refund.succeeded"))
    client.force_login(order.user)

    html = client.get(f"/orders/{order.pk}/").content.decode()

    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    assert 'data-testid="timeline-cancelled"' in html
    assert "Refunded" in html
