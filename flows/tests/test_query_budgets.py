"""Query budgets of the hot paths: exact counts, pinned with django_assert_num_queries.

A budget that moves is a decision made in the diff where it moves: read the queries the
failure lists (`-v`), then fix the regression or change the number and say why. Counts
include SAVEPOINT / RELEASE SAVEPOINT: each nested atomic block costs two statements.
After-commit work (the provider's charge, Celery enqueues) never runs inside a test's
transaction unless captured and run, so each budget names what it includes."""

import pytest
from django.test import Client

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import ADDRESS, place_order
from flows.order_paid import order_place_paid
from invoicing.models import Invoice, InvoiceStatus
from invoicing.services import FaultInjector, invoice_assign_number
from orders.models import Order, OrderStatus
from orders.services import cart_add_item, cart_get_or_create, checkout_place_order
from payments.models import PaymentAttempt, SimulatedDelivery, WebhookEvent
from payments.tests.helpers import attempt_for, event_body, post_webhook

pytestmark = pytest.mark.django_db


def _cart_of_two_lines(user) -> None:
    cart = cart_get_or_create(user=user)
    for product in (ProductFactory(on_hand=10), ProductFactory(on_hand=10)):
        cart_add_item(cart=cart, sku=product.sku, quantity=2)


def _order_of_two_lines(user) -> Order:
    _cart_of_two_lines(user)
    return checkout_place_order(cart=cart_get_or_create(user=user), user=user, shipping_address=ADDRESS)


def _paid_order_with_issued_invoice(user) -> Order:
    """Paid the way the shop is paid: a succeeded attempt applied by a signed webhook."""
    order = _order_of_two_lines(user)
    attempt = attempt_for(order)
    assert post_webhook(Client(), event_body(attempt, "payment.succeeded")).status_code == 200
    invoice_assign_number(invoice_id=Invoice.objects.get(order=order).pk, fault=FaultInjector(rate=0))
    return order


# --- Writes -------------------------------------------------------------------------------------


def test_cart_add_budget(shopper_client, user, django_assert_num_queries):
    _cart_of_two_lines(user)
    product = ProductFactory(on_hand=10)

    # token+user 1, the cart 1 (read once: the answer reuses it), the product with its
    # stock 1, adding 5 (savepoints 2, the cart touched, which locks it, existing line?,
    # line insert), the answer's lines with products and stock 1
    with django_assert_num_queries(8, info="POST /api/v1/cart/items/, a third line"):
        response = shopper_client.post("/api/v1/cart/items/", {"sku": product.sku, "quantity": 1}, format="json")

    assert response.status_code == 201, response.content
    assert len(response.json()["lines"]) == 3


def test_checkout_budget(shopper_client, user, django_assert_num_queries):
    _cart_of_two_lines(user)

    # token+user 1, idempotency claim 3, cart 1, placing 12 (savepoints 2, cart lock, lines,
    # one guarded stock UPDATE per product x2, order, lines, reservations, status change,
    # outbox, cart emptied), key completed 1, and the savepoint pair that commits the
    # change with its stored answer 2. The answer reads nothing: it is built from the rows
    # just written (orders.selectors.order_just_placed)
    with django_assert_num_queries(19, info="POST /api/v1/checkout/, a cart of 2 lines"):
        response = shopper_client.post(
            "/api/v1/checkout/", {"shipping_address": ADDRESS}, format="json", HTTP_IDEMPOTENCY_KEY="budget-checkout"
        )

    assert response.status_code == 201, response.content
    assert Order.objects.get().lines.count() == 2


def test_payment_start_budget(shopper_client, user, django_assert_num_queries, django_capture_on_commit_callbacks):
    order = place_order(user=user)

    # token+user 1, idempotency claim 3, the service 5 (savepoints 2, order lock, which is
    # also the ownership check, attempt, whose partial unique index refuses a second one
    # processing, outbox), key completed 1, the savepoint pair that commits the change with
    # its stored answer 2
    with (
        django_assert_num_queries(12, info="POST /api/v1/orders/{id}/payments/, the request"),
        django_capture_on_commit_callbacks(execute=False) as after_commit,
    ):
        response = shopper_client.post(
            f"/api/v1/orders/{order.pk}/payments/",
            {"payment_method": "pm_card_success"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="budget-payment",
        )
    assert response.status_code == 201, response.content
    attempt = PaymentAttempt.objects.get(order=order)
    assert not SimulatedDelivery.objects.exists()  # the charge waits for the commit

    # The charge, after commit: the provider's first delivery row 1 (INSERT ... ON CONFLICT
    # DO NOTHING, no savepoint), submitted mark 1; the attempt is the one just committed,
    # not read again
    with (
        django_assert_num_queries(2, info="POST /api/v1/orders/{id}/payments/, its after-commit charge"),
        django_capture_on_commit_callbacks(execute=False) as kicks,
    ):
        for callback in after_commit:
            callback()

    assert list(SimulatedDelivery.objects.values_list("attempt_id", "step")) == [(attempt.pk, 0)]
    assert len(kicks) == 1  # the delivery's Celery kick, after the provider's own commit


def test_webhook_apply_budget(client, django_assert_num_queries):
    order = _order_of_two_lines(UserFactory())
    attempt = attempt_for(order)
    body = event_body(attempt, "payment.succeeded")

    # attempt by reference (with its order_id) 1, order + attempt locks 2, attempt
    # succeeded + outbox 2, order paid 3 (one UPDATE with placed_at, status change, outbox:
    # the flow joins the webhook's transaction and lock, no savepoint, no second lock),
    # stock committed 4 (reservations locked, one UPDATE per product x2, reservations),
    # invoice 5 (exists?, order lines, invoice, its lines, outbox), the event stored last
    # with its outcome 1 (INSERT ... ON CONFLICT DO NOTHING: a duplicate rolls back), the
    # outer savepoints 2
    with django_assert_num_queries(18, info="POST /api/v1/webhooks/payments/, payment.succeeded, 2 lines"):
        response = post_webhook(client, body)

    assert response.status_code == 200, response.content
    assert (response.json()["changed_state"], response.json()["outcome"]) == (True, "attempt succeeded; order paid")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert Invoice.objects.get(order=order).lines.count() == 2


@pytest.mark.parametrize("first", ["payment.processing", "payment.succeeded"])
def test_webhook_processing_budget(client, django_assert_num_queries, first):
    order = _order_of_two_lines(UserFactory())
    attempt = attempt_for(order)
    if first == "payment.succeeded":  # a stale processing event after the final one
        assert post_webhook(client, event_body(attempt, first)).status_code == 200

    # attempt by reference (with its status) 1, the event stored with its outcome 1: a
    # processing event changes nothing, so it takes no lock and no transaction
    with django_assert_num_queries(2, info="POST /api/v1/webhooks/payments/, payment.processing"):
        response = post_webhook(client, event_body(attempt, "payment.processing"))

    assert response.status_code == 200, response.content
    assert response.json()["changed_state"] is False
    stale = first == "payment.succeeded"
    assert response.json()["outcome"] == (
        "attempt already succeeded; stale processing event ignored" if stale else "attempt is processing"
    )
    assert WebhookEvent.objects.filter(event_type="payment.processing", outcome=response.json()["outcome"]).count() == 1


def test_invoice_numbering_budget(django_capture_on_commit_callbacks, django_assert_num_queries):
    invoices = []
    for _ in range(2):
        order = place_order()
        with django_capture_on_commit_callbacks(execute=False):
            order_place_paid(order_id=order.pk)
        invoices.append(Invoice.objects.get(order=order))
    first, second = invoices

    # savepoints 2, invoice lock, sequence UPDATE (no row) + INSERT + UPDATE, invoice UPDATE,
    # outbox, the invoice read back after commit
    with django_assert_num_queries(9, info="invoice_assign_number, the series' first number"):
        invoice_assign_number(invoice_id=first.pk, fault=FaultInjector(rate=0))
    # the same with the series row in place: one sequence UPDATE ... RETURNING
    with django_assert_num_queries(7, info="invoice_assign_number"):
        issued = invoice_assign_number(invoice_id=second.pk, fault=FaultInjector(rate=0))

    assert (issued.status, issued.number) == (InvoiceStatus.ISSUED, 2)


# --- Reads --------------------------------------------------------------------------------------


@pytest.mark.parametrize("invoices", [2, 8])
def test_invoice_list_budget_does_not_grow_with_invoices(
    invoices, staff_client, client_for, django_capture_on_commit_callbacks, django_assert_num_queries
):
    owner = UserFactory()
    for i in range(invoices):
        order = place_order(user=owner)
        with django_capture_on_commit_callbacks(execute=False):
            order_place_paid(order_id=order.pk)
        if i % 2:
            invoice_assign_number(invoice_id=Invoice.objects.get(order=order).pk, fault=FaultInjector(rate=0))
    owner_client = client_for(owner)

    # token+user 1, the staff permission check (user's, groups') 2, count 1, page with
    # order and amounts 1, lines (prefetched) 1
    with django_assert_num_queries(6, info=f"GET /api/v1/invoices/ as staff, {invoices} invoices"):
        as_staff = staff_client.get("/api/v1/invoices/")
    # token+user 1, count 1, page 1, lines 1
    with django_assert_num_queries(4, info=f"GET /api/v1/invoices/ as the owner, {invoices} invoices"):
        as_owner = owner_client.get("/api/v1/invoices/")

    assert as_staff.json()["count"] == as_owner.json()["count"] == invoices


def test_order_page_budget(client, user, django_assert_num_queries):
    order = _paid_order_with_issued_invoice(user)
    client.force_login(user)

    # user 1, order+invoice 1, lines 1, attempts 1, the header's cart count 1 (the session
    # comes from the cache: common/sessions.py), the timeline's status history 1 and refunds 1
    with django_assert_num_queries(7, info="GET /orders/<id>/, paid, invoice issued"):
        response = client.get(f"/orders/{order.pk}/")

    assert response.status_code == 200
    assert 'data-testid="invoice-number">INV-1<' in response.content.decode()


def test_invoice_block_poll_budget(client, user, django_assert_num_queries):
    order = _paid_order_with_issued_invoice(user)
    client.force_login(user)

    # user 1, order+invoice 1 (the session from the cache, no context processors)
    with django_assert_num_queries(2, info="GET /orders/<id>/invoice-block/, invoice issued"):
        response = client.get(f"/orders/{order.pk}/invoice-block/")

    assert response.status_code == 200
    assert 'data-testid="invoice-number">INV-1<' in response.content.decode()
    # Polling again with the ETag: 304, same two queries, nothing rendered.
    with django_assert_num_queries(2, info="GET /orders/<id>/invoice-block/, If-None-Match"):
        again = client.get(f"/orders/{order.pk}/invoice-block/", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    assert again.content == b""


def test_invoice_block_etag_changes_when_the_number_arrives(client, user):
    order = place_order(user=user)
    order_place_paid(order_id=order.pk)
    client.force_login(user)
    pending = client.get(f"/orders/{order.pk}/invoice-block/")
    assert 'data-testid="invoice-number">Pending<' in pending.content.decode()
    assert client.get(f"/orders/{order.pk}/invoice-block/", HTTP_IF_NONE_MATCH=pending["ETag"]).status_code == 304

    invoice_assign_number(invoice_id=Invoice.objects.get(order=order).pk, fault=FaultInjector(rate=0))
    issued = client.get(f"/orders/{order.pk}/invoice-block/", HTTP_IF_NONE_MATCH=pending["ETag"])
    assert issued.status_code == 200
    assert issued["ETag"] != pending["ETag"]
    assert 'data-testid="invoice-number">INV-1<' in issued.content.decode()
    # Another customer's order: 404, no ETag to learn anything from.
    client.force_login(UserFactory())
    assert client.get(f"/orders/{order.pk}/invoice-block/").status_code == 404
