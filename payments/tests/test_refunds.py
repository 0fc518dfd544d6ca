"""Refunds through the provider: create (capped, validated, nothing changed on refusal),
the provider's refund webhooks applied once and forward only, the refund-succeeded flow
(order state, restock, credit note), staff cancel of a paid order, Refund now, the
resubmit sweeper. Webhooks are signed independently (payments/tests/helpers.py)."""

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Sum

from common.errors import ValidationFailed
from common.money import money_round
from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import place_order, run_in_threads
from inventory.models import Reservation, ReservationStatus, Stock
from invoicing.models import CreditNote
from orders.models import Order, OrderStatus, OrderStatusChange
from orders.services import cart_add_item, cart_get_or_create, checkout_place_order
from outbox.models import OutboxEvent
from payments.models import PaymentAttempt, Refund, RefundLine, RefundStatus, SimulatedDelivery, WebhookEvent
from payments.refunds import (
    OrderNotRefundable,
    RefundExceedsRefundable,
    RefundInProgress,
    RefundLineSpec,
    order_refundable_amount,
    refund_create,
    refund_create_for_flagged_attempt,
    refunds_resubmit,
)
from payments.tests.helpers import attempt_for, event_body, post_webhook

pytestmark = pytest.mark.django_db

# Pinned: a budget that moves is a decision, made in the diff where it moves.
BUDGET_CREATE = 12
BUDGET_WEBHOOK = 29  # 31 until order_transition joined the caller's transaction (no savepoint)

ADDRESS = {"name": "Ada", "line1": "1 Test Street", "city": "Paris", "postal_code": "75001", "country": "FR"}


def paid_order(client: Any, *, lines: tuple[tuple[Any, int], ...] = (), method: str = "pm_card_success") -> Order:
    """An order paid through a real signed payment.succeeded webhook (invoice created)."""
    user = UserFactory()
    cart = cart_get_or_create(user=user)
    for product, quantity in lines or ((ProductFactory(on_hand=20), 3),):
        cart_add_item(cart=cart, sku=product.sku, quantity=quantity)
    order = checkout_place_order(cart=cart, user=user, shipping_address=ADDRESS)
    attempt = attempt_for(order, payment_method=method)
    response = post_webhook(client, event_body(attempt, "payment.succeeded"))
    assert response.status_code == 200, response.content
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    return order


def refund_event(refund: Refund, event_type: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "created_at": datetime.now(UTC).isoformat(),
        "data": {
            "provider_reference": refund.provider_reference,
            "amount": f"{refund.amount:.2f}",
            "currency": refund.currency,
            "failure_reason": "declined" if event_type == "refund.failed" else None,
        },
    }
    body.update(overrides)
    return body


def trace(order: Order) -> tuple:
    """Everything a refused refund must leave untouched."""
    return (
        Order.objects.get(pk=order.pk).status,
        Refund.objects.filter(order=order).count(),
        RefundLine.objects.filter(refund__order=order).count(),
        OutboxEvent.objects.count(),
        OrderStatusChange.objects.filter(order=order).count(),
        list(Stock.objects.order_by("product_id").values_list("on_hand", "reserved")),
    )


def on_hand(product: Any) -> int:
    return Stock.objects.get(product=product).on_hand


# --- The happy paths ---------------------------------------------------------------------------


def test_a_line_refund_with_restock_succeeds_once_its_webhook_arrives(client):
    mug = ProductFactory(on_hand=20)
    order = paid_order(client, lines=((mug, 3),))
    staff = StaffFactory()
    assert on_hand(mug) == 17

    refund = refund_create(
        order_id=order.pk, reason="damaged", restock=True, lines=[RefundLineSpec(mug.sku, 1)], actor=staff
    )

    assert refund.status == RefundStatus.PENDING
    line = refund.lines.get()
    # 10.00 net, 20% VAT: one unit is 12.00 gross.
    assert (line.quantity, line.amount, refund.amount) == (1, Decimal("12.00"), Decimal("12.00"))
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID  # nothing moves before the provider says so
    assert on_hand(mug) == 17

    response = post_webhook(client, refund_event(refund, "refund.succeeded"))

    assert response.status_code == 200
    assert response.json()["changed_state"] is True
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.succeeded_at is not None
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PARTIALLY_REFUNDED
    assert on_hand(mug) == 18
    note = CreditNote.objects.get(refund=refund)
    assert note.total == Decimal("12.00")
    types = set(OutboxEvent.objects.filter(aggregate_id=str(refund.pk)).values_list("event_type", flat=True))
    assert {"refund.created", "refund.succeeded"} <= types
    change = OrderStatusChange.objects.filter(order=order).latest("id")
    assert (change.from_status, change.to_status, change.actor) == ("paid", "partially_refunded", staff)


def test_partial_refunds_then_the_rest_make_the_order_refunded_to_the_cent(client):
    order = paid_order(client)
    first = refund_create(order_id=order.pk, reason="goodwill", amount="5.00")
    post_webhook(client, refund_event(first, "refund.succeeded"))
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PARTIALLY_REFUNDED

    rest = refund_create(order_id=order.pk, reason="the rest")

    assert rest.amount == order.total - Decimal("5.00")
    assert rest.lines.count() == 1  # every unit not refunded yet, as lines
    post_webhook(client, refund_event(rest, "refund.succeeded"))
    assert Order.objects.get(pk=order.pk).status == OrderStatus.REFUNDED
    given = Refund.objects.filter(order=order, status="succeeded").aggregate(s=Sum("amount"))["s"]
    assert given == order.total
    assert order_refundable_amount(order_id=order.pk) == 0
    assert CreditNote.objects.filter(order=order).count() == 2


def test_a_failed_refund_changes_nothing_but_the_refund(client):
    product = ProductFactory(on_hand=20)
    order = paid_order(client, lines=((product, 2),))
    refund = refund_create(order_id=order.pk, reason="r", restock=True, lines=[RefundLineSpec(product.sku, 2)])

    post_webhook(client, refund_event(refund, "refund.failed"))

    refund.refresh_from_db()
    assert (refund.status, refund.failure_reason) == (RefundStatus.FAILED, "declined")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert on_hand(product) == 18
    assert not CreditNote.objects.filter(refund=refund).exists()
    # A failed refund no longer counts against the cap: the whole amount can be refunded again.
    assert order_refundable_amount(order_id=order.pk) == order.total


def test_refund_webhooks_delivered_five_times_and_shuffled_change_state_once(client):
    """Per refund: its success and a (stale) failure, each delivered 5 times, shuffled. The
    first of the two to arrive decides, exactly once; everything after is recorded, ignored."""
    rng = random.Random(14)
    for round_ in range(6):
        product = ProductFactory(on_hand=20)
        order = paid_order(client, lines=((product, 2),))
        refund = refund_create(order_id=order.pk, reason="r", restock=True, lines=[RefundLineSpec(product.sku, 1)])
        succeeded = refund_event(refund, "refund.succeeded")
        failed = refund_event(refund, "refund.failed")
        deliveries = [succeeded] * 5 + [failed] * 5
        rng.shuffle(deliveries)

        answers = [post_webhook(client, body).json() for body in deliveries]

        first = deliveries[0]["type"]
        refund.refresh_from_db()
        assert refund.status == ("succeeded" if first == "refund.succeeded" else "failed"), round_
        assert [a["changed_state"] for a in answers].count(True) == 1
        assert [a["duplicate"] for a in answers].count(False) == 2  # two distinct webhook ids
        assert WebhookEvent.objects.filter(refund=refund).count() == 2
        assert WebhookEvent.objects.filter(refund=refund, changed_state=True).count() == 1
        assert on_hand(product) == (19 if first == "refund.succeeded" else 18)
        assert CreditNote.objects.filter(refund=refund).count() == (1 if first == "refund.succeeded" else 0)
        expected = OrderStatus.PARTIALLY_REFUNDED if first == "refund.succeeded" else OrderStatus.PAID
        assert Order.objects.get(pk=order.pk).status == expected


def test_a_refund_event_with_another_amount_is_recorded_and_ignored(client):
    order = paid_order(client)
    refund = refund_create(order_id=order.pk, reason="r", amount="3.00")

    answer = post_webhook(client, refund_event(refund, "refund.succeeded", data={
        "provider_reference": refund.provider_reference, "amount": "30.00", "currency": "EUR",
    })).json()  # fmt: skip

    assert answer["changed_state"] is False
    assert "expected" in answer["outcome"]
    assert Refund.objects.get(pk=refund.pk).status == RefundStatus.PENDING


# --- Bad input: a clear error, nothing changed -------------------------------------------------


def test_a_refund_above_the_refundable_amount_is_refused(client):
    order = paid_order(client)
    refund_create(order_id=order.pk, reason="first", amount="10.00")
    before = trace(order)

    with pytest.raises(RefundExceedsRefundable) as caught:
        refund_create(order_id=order.pk, reason="too much", amount=str(order.total - Decimal("9.99")))

    assert caught.value.status_code == 409
    assert caught.value.details["refundable"] == f"{order.total - Decimal('10.00'):.2f}"
    assert trace(order) == before


def test_a_refund_of_an_unpaid_order_is_refused():
    order = place_order()
    before = trace(order)
    with pytest.raises(OrderNotRefundable) as caught:
        refund_create(order_id=order.pk, reason="r", amount="1.00")
    assert (caught.value.status_code, caught.value.code) == (409, "order_not_refundable")
    assert trace(order) == before


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([RefundLineSpec("NO-SUCH-SKU", 1)], "sku"),
        ([RefundLineSpec("{sku}", 4)], "quantity"),  # 3 bought
        ([RefundLineSpec("{sku}", 0)], "quantity"),
        ([RefundLineSpec("{sku}", 1), RefundLineSpec("{sku}", 1)], "sku"),
    ],
)
def test_bad_refund_lines_are_refused_naming_the_line(client, lines, field):
    product = ProductFactory(on_hand=20)
    order = paid_order(client, lines=((product, 3),))
    specs = [RefundLineSpec(spec.sku.format(sku=product.sku), spec.quantity) for spec in lines]
    before = trace(order)

    with pytest.raises(ValidationFailed) as caught:
        refund_create(order_id=order.pk, reason="r", lines=specs)

    assert caught.value.code == "validation_error"
    assert field in caught.value.details["lines"][str(len(specs) - 1)]
    assert trace(order) == before


def test_units_already_refunded_or_pending_cannot_be_refunded_again(client):
    product = ProductFactory(on_hand=20)
    order = paid_order(client, lines=((product, 3),))
    refund_create(order_id=order.pk, reason="r", lines=[RefundLineSpec(product.sku, 2)])  # pending counts
    before = trace(order)

    with pytest.raises(ValidationFailed) as caught:
        refund_create(order_id=order.pk, reason="r", lines=[RefundLineSpec(product.sku, 2)])

    assert "At most 1" in caught.value.details["lines"]["0"]["quantity"][0]
    assert trace(order) == before


@pytest.mark.parametrize("amount", ["0", "0.00", "-5.00", "1.005", "NaN", "abc"])
def test_zero_negative_or_malformed_amounts_are_refused(client, amount):
    order = paid_order(client)
    before = trace(order)
    with pytest.raises(ValidationFailed) as caught:
        refund_create(order_id=order.pk, reason="r", amount=amount)
    assert "amount" in caught.value.details
    assert trace(order) == before


def test_a_refund_needs_a_reason(client):
    order = paid_order(client)
    before = trace(order)
    with pytest.raises(ValidationFailed):
        refund_create(order_id=order.pk, reason="  ", amount="1.00")
    assert trace(order) == before


# --- Concurrency: the cap holds exactly --------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_twenty_threads_refunding_one_order_in_parts_never_exceed_what_was_paid(client):
    order = paid_order(client, lines=((ProductFactory(on_hand=50, price=Decimal("19.99")), 5),))
    part = money_round(order.total / 7, order.currency)  # 7 fit, the 8th does not (it would exceed)
    fits = int(order.total // part)

    outcomes = run_in_threads(lambda i: refund_create(order_id=order.pk, reason=f"part {i}", amount=part), 20)

    created = [o for o in outcomes if isinstance(o, Refund)]
    refused = [o for o in outcomes if isinstance(o, RefundExceedsRefundable)]
    assert len(created) == fits, outcomes
    assert len(refused) == 20 - fits, outcomes
    live = Refund.objects.filter(order=order).aggregate(s=Sum("amount"))["s"]
    assert live == part * fits <= order.total
    assert order_refundable_amount(order_id=order.pk) == order.total - part * fits
    # The remainder, exactly, is still refundable; a cent more is not.
    with pytest.raises(RefundExceedsRefundable):
        refund_create(order_id=order.pk, reason="over", amount=order.total - part * fits + Decimal("0.01"))
    last = refund_create(order_id=order.pk, reason="rest", amount=order.total - part * fits)
    assert Refund.objects.filter(order=order).aggregate(s=Sum("amount"))["s"] == order.total
    assert last.amount > 0


# --- Cancel -------------------------------------------------------------------------------------


def test_staff_cancel_of_a_paid_order_refunds_it_in_full_with_restock_then_cancels_it(client, staff_client):
    product = ProductFactory(on_hand=20)
    order = paid_order(client, lines=((product, 4),))

    response = staff_client.post(f"/api/v1/orders/{order.pk}/cancel/", {"reason": "out of stock"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "paid"  # until the provider confirms
    refund = Refund.objects.get(order=order)
    assert (refund.amount, refund.restock, refund.cancels_order) == (order.total, True, True)
    again = staff_client.post(f"/api/v1/orders/{order.pk}/cancel/", {}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "refund_in_progress"

    post_webhook(client, refund_event(refund, "refund.succeeded"))

    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    assert on_hand(product) == 20
    assert staff_client.get(f"/api/v1/orders/{order.pk}/").json()["payment_status"] == "refunded"


def test_shopper_cancels_an_unpaid_order_and_the_stock_is_released_at_once(client_for):
    product = ProductFactory(on_hand=5)
    order = place_order(product=product, quantity=2)
    assert Stock.objects.get(product=product).reserved == 2

    response = client_for(order.user).post(f"/api/v1/orders/{order.pk}/cancel/", {}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    assert Stock.objects.get(product=product).reserved == 0
    assert set(Reservation.objects.filter(order_line__order=order).values_list("status", flat=True)) == {
        ReservationStatus.RELEASED
    }
    change = OrderStatusChange.objects.filter(order=order).latest("id")
    assert (change.to_status, change.actor_id, change.reason) == (
        "cancelled",
        order.user.pk,
        "cancelled by the customer",
    )
    assert OutboxEvent.objects.filter(event_type="order.cancelled", aggregate_id=str(order.pk)).count() == 1


def test_a_processing_payment_blocks_the_shoppers_cancel(client_for):
    order = place_order()
    attempt_for(order)
    before = trace(order)

    response = client_for(order.user).post(f"/api/v1/orders/{order.pk}/cancel/", {}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "payment_in_progress"
    assert trace(order) == before


def test_a_shopper_cannot_cancel_a_paid_order_nor_anothers(client, client_for):
    order = paid_order(client)
    before = trace(order)

    mine = client_for(order.user).post(f"/api/v1/orders/{order.pk}/cancel/", {}, format="json")
    theirs = client_for(UserFactory()).post(f"/api/v1/orders/{order.pk}/cancel/", {}, format="json")

    assert (mine.status_code, mine.json()["error"]["code"]) == (409, "illegal_transition")
    assert (theirs.status_code, theirs.json()["error"]["code"]) == (404, "not_found")
    assert trace(order) == before


def test_a_shipped_order_cannot_be_cancelled_even_by_staff(client, staff_client):
    order = paid_order(client)
    shipped = staff_client.post(
        f"/api/v1/orders/{order.pk}/ship/", {"carrier": "DHL", "tracking_number": "JD9"}, format="json"
    )
    assert shipped.status_code == 200
    assert shipped.json()["shipment"]["carrier"] == "DHL"
    before = trace(order)

    response = staff_client.post(f"/api/v1/orders/{order.pk}/cancel/", {}, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (409, "illegal_transition")
    assert trace(order) == before


# --- Refund now (refund_required) and the durable provider call --------------------------------


def test_refund_now_gives_back_a_flagged_success_through_the_same_path(client):
    order = paid_order(client)
    late = PaymentAttempt.objects.create(
        order=order, amount=order.total, currency=order.currency, provider="simulated",
        provider_reference=f"sim_pi_{uuid.uuid4().hex}", payment_method="pm_card_success", status="succeeded",
        completed_at=datetime.now(UTC), refund_required=True, refund_reason="order was already paid",
    )  # fmt: skip
    refundable = order_refundable_amount(order_id=order.pk)

    refund = refund_create_for_flagged_attempt(attempt_id=late.pk, actor=StaffFactory())
    with pytest.raises(RefundInProgress):
        refund_create_for_flagged_attempt(attempt_id=late.pk)
    post_webhook(client, refund_event(refund, "refund.succeeded"))

    refund.refresh_from_db()
    assert (refund.status, refund.amount, refund.attempt_id) == ("succeeded", order.total, late.pk)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID  # the order's own payment is untouched
    assert order_refundable_amount(order_id=order.pk) == refundable
    assert not CreditNote.objects.filter(refund=refund).exists()  # never invoiced


def test_a_refund_is_submitted_after_commit_and_again_by_the_sweeper_if_that_was_lost(
    client, django_capture_on_commit_callbacks
):
    order = paid_order(client)
    with django_capture_on_commit_callbacks(execute=False):  # the after-commit call is lost
        refund = refund_create(order_id=order.pk, reason="r", amount="2.00")
    assert Refund.objects.get(pk=refund.pk).submitted_at is None
    assert refunds_resubmit(now=datetime.now(UTC) + timedelta(seconds=1), stale_s=60) == 0  # not stale yet

    with django_capture_on_commit_callbacks(execute=False):
        assert refunds_resubmit(now=datetime.now(UTC) + timedelta(seconds=61), stale_s=60) == 1
        assert refunds_resubmit(now=datetime.now(UTC) + timedelta(seconds=61), stale_s=60) == 0  # once

    refund.refresh_from_db()
    assert refund.submitted_at is not None
    delivery = SimulatedDelivery.objects.get(refund=refund)
    assert (delivery.step, delivery.event_type, delivery.attempt_id) == (0, "refund.succeeded", refund.attempt_id)
    assert delivery.event_id == f"evt_{refund.provider_reference}_refund-succeeded"


@pytest.mark.parametrize(
    ("method", "script"),
    [
        ("pm_card_success", [("refund.succeeded", "refund-succeeded")]),
        ("pm_card_refund_fails", [("refund.failed", "refund-failed")]),
        (
            "pm_card_refund_flaky",
            [
                ("refund.succeeded", "refund-succeeded"),
                ("refund.succeeded", "refund-succeeded"),
                ("refund.failed", "refund-failed-late"),
            ],
        ),
    ],
)
def test_simulated_refund_scripts(client, method, script):
    from payments.providers.simulated import REFUND_SCRIPT, REFUND_SCRIPTS, simulated_event, simulated_script

    order = paid_order(client, method=method)
    refund = refund_create(order_id=order.pk, reason="r", amount="1.00")
    name = REFUND_SCRIPTS.get(method, REFUND_SCRIPT)
    started = datetime.now(UTC)
    bodies = [
        simulated_event(attempt=refund.attempt, refund=refund, script=name, step=i, started_at=started)
        for i in range(len(simulated_script(name)))
    ]
    assert [(b["type"], b["id"]) for b in bodies] == [
        (kind, f"evt_{refund.provider_reference}_{key}") for kind, key in script
    ]
    assert {b["data"]["provider_reference"] for b in bodies} == {refund.provider_reference}
    assert {b["data"]["amount"] for b in bodies} == {"1.00"}


# --- Query budgets -------------------------------------------------------------------------------


def test_refund_create_and_its_webhook_have_pinned_query_budgets(
    client, django_assert_num_queries, django_capture_on_commit_callbacks
):
    product = ProductFactory(on_hand=20)
    order = paid_order(client, lines=((product, 3),))

    with (
        django_capture_on_commit_callbacks(execute=False),
        django_assert_num_queries(BUDGET_CREATE, info="refund_create with one line"),
    ):
        refund = refund_create(order_id=order.pk, reason="r", restock=True, lines=[RefundLineSpec(product.sku, 1)])
    with django_assert_num_queries(BUDGET_WEBHOOK, info="refund.succeeded webhook: flow, credit note, restock"):
        post_webhook(client, refund_event(refund, "refund.succeeded"))
    assert Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED


def test_health_reports_refunds_the_provider_never_took(client, django_capture_on_commit_callbacks):
    from payments.selectors import refunds_health

    order = paid_order(client)
    assert refunds_health()["status"] == "ok"
    with django_capture_on_commit_callbacks(execute=False):  # the provider call is lost
        refund_create(order_id=order.pk, reason="r", amount="1.00")

    now = datetime.now(UTC)
    early = refunds_health(now=now)
    assert (early["status"], early["pending"], early["unsubmitted"]) == ("ok", 1, 1)
    late = refunds_health(now=now + timedelta(seconds=61))
    assert (late["status"], late["unsubmitted"]) == ("warning", 1)
    assert client.get("/health/").json()["backlogs"]["refunds"]["pending"] == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_and_conflicting_refund_webhooks_change_state_once(client):
    from django.test import Client

    product = ProductFactory(on_hand=20)
    order = paid_order(client, lines=((product, 2),))
    refund = refund_create(order_id=order.pk, reason="r", restock=True, lines=[RefundLineSpec(product.sku, 2)])
    succeeded, failed = refund_event(refund, "refund.succeeded"), refund_event(refund, "refund.failed")
    bodies = [succeeded if i % 2 else failed for i in range(16)]

    outcomes = run_in_threads(lambda i: post_webhook(Client(), bodies[i]).json(), len(bodies))

    assert [o["changed_state"] for o in outcomes].count(True) == 1, outcomes
    assert [o["duplicate"] for o in outcomes].count(False) == 2
    refund.refresh_from_db()
    assert refund.status in (RefundStatus.SUCCEEDED, RefundStatus.FAILED)
    won = refund.status == RefundStatus.SUCCEEDED
    assert on_hand(product) == (20 if won else 18)
    assert CreditNote.objects.filter(refund=refund).count() == (1 if won else 0)
    refunded = OrderStatus.REFUNDED if refund.amount == order.total else OrderStatus.PARTIALLY_REFUNDED
    assert Order.objects.get(pk=order.pk).status == (refunded if won else OrderStatus.PAID)


# --- An order paid in parts (a staff-billed invoice) ------------------------------------------


def test_an_order_paid_in_parts_is_refunded_payment_by_payment_and_cancelled_by_one_refund_each(client):
    from invoicing.tests.docs_helpers import staff_invoice, succeed
    from orders.services import DraftLineSpec

    product = ProductFactory(on_hand=10, price=Decimal("10.00"))
    invoice = staff_invoice(lines=[DraftLineSpec(sku=product.sku, quantity=5)], allow_partial=True)  # 60.00
    first = succeed(invoice, Decimal("25.00"))
    second = succeed(invoice)  # the remaining 35.00
    order = Order.objects.get(pk=invoice.order_id)
    assert order.status == OrderStatus.PAID
    assert on_hand(product) == 5

    # One refund gives back one payment: more than the largest part left is refused, clearly.
    with pytest.raises(RefundExceedsRefundable) as caught:
        refund_create(order_id=order.pk, reason="r", amount="40.00")
    assert "paid in parts" in caught.value.message
    assert refund_create(order_id=order.pk, reason="r", amount="30.00").attempt_id == second.pk

    # A staff cancel gives back everything left: one refund per payment, the units with the first.
    from flows.order_cancel import order_cancel_by

    order_cancel_by(order_id=order.pk, actor=StaffFactory(), staff=True)
    cancels = list(Refund.objects.filter(order=order, cancels_order=True).order_by("id"))
    assert [(r.attempt_id, r.amount) for r in cancels] == [(first.pk, Decimal("25.00")), (second.pk, Decimal("5.00"))]
    assert sum(line.amount for line in cancels[0].lines.all()) <= Decimal("25.00")
    assert cancels[0].lines.get().quantity == 5
    for refund in Refund.objects.filter(order=order):
        post_webhook(client, refund_event(refund, "refund.succeeded"))

    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    assert on_hand(product) == 10
    assert order_refundable_amount(order_id=order.pk) == 0
