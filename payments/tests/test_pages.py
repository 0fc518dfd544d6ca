"""The pay step, the simulated provider's hosted page, the order page's payment block,
and the admin pages for payments."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import place_order
from orders.models import Order, OrderStatus
from orders.selectors import order_payment_status, orders_for_list
from orders.services import cart_add_item, cart_get_or_create, order_cancel
from payments.models import FailureCode, PaymentAttempt, PaymentStatus
from payments.tests.helpers import attempt_for, event_body, post_webhook, record_delivery_kicks

pytestmark = pytest.mark.django_db

KEY = re.compile(r'name="idempotency_key" value="([0-9a-f]+)"')


@pytest.fixture
def deliveries(monkeypatch):
    return record_delivery_kicks(monkeypatch)


@pytest.fixture
def shopper(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def order(user):
    return place_order(user=user)


def _pay_key(shopper: Client, order: Order) -> str:
    page = shopper.get(f"/orders/{order.pk}/pay/")
    assert page.status_code == 200
    match = KEY.search(page.content.decode())
    assert match is not None
    return match.group(1)


def _payment_block(shopper: Client, order: Order) -> str:
    html = shopper.get(f"/orders/{order.pk}/").content.decode()
    return html[html.index('id="payment-block"') : html.index("</div>", html.index('id="payment-block"'))]


def test_checkout_leads_to_the_pay_step(shopper, user):
    product = ProductFactory(on_hand=5)
    cart_add_item(cart=cart_get_or_create(user=user), sku=product.sku, quantity=1)
    page = shopper.get("/checkout/").content.decode()
    key = KEY.search(page)
    assert key is not None
    form = {"name": "Ada", "line1": "1 Street", "city": "Paris", "postal_code": "75001", "country": "FR"}

    response = shopper.post("/checkout/", {**form, "coupon": "", "idempotency_key": key.group(1)})

    order = Order.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/orders/{order.pk}/pay/"


def test_pay_step_starts_one_attempt_and_sends_the_shopper_to_the_hosted_page(shopper, order, deliveries):
    key = _pay_key(shopper, order)

    first = shopper.post(f"/orders/{order.pk}/pay/", {"idempotency_key": key})
    again = shopper.post(f"/orders/{order.pk}/pay/", {"idempotency_key": key})  # double click / resubmit
    other_tab = shopper.post(f"/orders/{order.pk}/pay/", {"idempotency_key": _pay_key(shopper, order)})

    attempt = PaymentAttempt.objects.get()
    hosted = f"/payments/simulated/{attempt.provider_reference}/"
    assert (first.status_code, first["Location"]) == (302, hosted)
    assert (again.status_code, again["Location"]) == (302, hosted)
    assert (other_tab.status_code, other_tab["Location"]) == (302, hosted)  # continues the open payment
    assert attempt.awaiting_customer
    assert deliveries == []  # nothing is charged until a card is chosen


def test_pay_step_of_another_customers_order_is_404(order):
    stranger = Client()
    stranger.force_login(UserFactory())

    assert stranger.get(f"/orders/{order.pk}/pay/").status_code == 404
    assert stranger.post(f"/orders/{order.pk}/pay/", {"idempotency_key": "k"}).status_code == 404
    assert not PaymentAttempt.objects.exists()


def test_pay_step_of_a_cancelled_order_goes_back_to_the_order(shopper, order):
    order_cancel(order_id=order.pk, reason="test")

    response = shopper.get(f"/orders/{order.pk}/pay/")

    assert (response.status_code, response["Location"]) == (302, f"/orders/{order.pk}/")


def test_hosted_page_lists_the_test_cards_and_charges_the_chosen_one(
    client, order, deliveries, django_capture_on_commit_callbacks
):
    attempt = payment_attempt = attempt_for(order, payment_method="")
    url = f"/payments/simulated/{attempt.provider_reference}/"

    page = client.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"action": "pay", "payment_method": "pm_card_declined"})
    after = client.get(url).content.decode()

    for method in ("pm_card_success", "pm_card_declined", "pm_card_slow", "pm_card_flaky"):
        assert f'value="{method}"' in page
    assert f"{order.total} EUR" in page
    assert (response.status_code, response["Location"]) == (302, f"/orders/{order.pk}/")
    assert [(d["attempt_id"], d["script"], d["step"]) for d in deliveries] == [
        (payment_attempt.pk, "pm_card_declined", 0)
    ]
    assert "being processed" in after
    assert 'id="provider-form"' not in after


def test_hosted_page_cancel_reports_a_failure_through_the_provider(
    client, order, deliveries, django_capture_on_commit_callbacks
):
    attempt = attempt_for(order, payment_method="")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/payments/simulated/{attempt.provider_reference}/", {"action": "cancel"})

    assert response["Location"] == f"/orders/{order.pk}/"
    assert [d["script"] for d in deliveries] == ["cancel"]


def test_hosted_page_refuses_a_missing_card_and_unknown_references(client, order, deliveries):
    attempt = attempt_for(order, payment_method="")

    missing = client.post(f"/payments/simulated/{attempt.provider_reference}/", {"action": "pay"})

    assert missing.status_code == 400
    assert "Choose a test card." in missing.content.decode()
    assert client.get("/payments/simulated/sim_pi_nope/").status_code == 404
    assert deliveries == []


def test_payment_block_shows_processing_then_paid(shopper, client, order):
    attempt = attempt_for(order)

    processing = _payment_block(shopper, order)
    post_webhook(client, event_body(attempt, "payment.succeeded"))
    paid = _payment_block(shopper, order)

    assert 'data-testid="payment-status">Processing<' in processing
    assert 'data-polling="true"' in processing
    assert 'id="payment-refresh"' in processing
    assert 'data-testid="payment-status">Paid<' in paid
    assert "data-polling" not in paid


def test_a_read_that_overlaps_the_paid_commit_shows_processing_and_keeps_polling(shopper, order):
    # Each statement sees what was committed when it began: a page that read the order just
    # before the webhook's commit and its attempts just after sees a succeeded payment on an
    # order still awaiting it (make run's browser journey hit it). That is a payment being
    # applied, so the page keeps asking; "Awaiting payment" and a Pay button would stop it.
    attempt = attempt_for(order)
    PaymentAttempt.objects.filter(pk=attempt.pk).update(status=PaymentStatus.SUCCEEDED, completed_at=timezone.now())

    block = _payment_block(shopper, order)

    assert 'data-testid="payment-status">Processing<' in block
    assert 'data-polling="true"' in block
    assert 'id="pay-now"' not in block
    assert order_payment_status(order=orders_for_list(user=order.user).get(pk=order.pk)) == "processing"
    # A staff-billed order is placed at finalize and may await the rest after a part payment.
    Order.objects.filter(pk=order.pk).update(placed_at=timezone.now())
    assert order_payment_status(order=orders_for_list(user=order.user).get(pk=order.pk)) == "unpaid"


def test_payment_block_shows_the_failure_and_try_again_while_reserved(shopper, client, order):
    attempt = attempt_for(order, payment_method="pm_card_declined")
    post_webhook(client, event_body(attempt, "payment.failed", failure_reason="Your card was declined."))

    failed = _payment_block(shopper, order)
    Order.objects.filter(pk=order.pk).update(reservation_expires_at=timezone.now() - timedelta(seconds=1))
    expired = _payment_block(shopper, order)

    assert 'data-testid="payment-status">Failed<' in failed
    assert 'data-testid="payment-failure">Your card was declined.<' in failed
    assert f'href="/orders/{order.pk}/pay/" id="pay-again">Try again<' in failed
    assert "Try again" not in expired
    assert "reservation has run out" in expired


def test_payment_block_before_paying_and_for_an_open_hosted_page(shopper, order):
    unpaid = _payment_block(shopper, order)
    attempt = attempt_for(order, payment_method="")
    awaiting = _payment_block(shopper, order)

    assert 'id="pay-now"' in unpaid
    assert 'data-testid="payment-status">Awaiting payment<' in awaiting
    assert f'href="/payments/simulated/{attempt.provider_reference}/" id="continue-payment"' in awaiting


def test_payment_block_of_a_cancelled_order_with_a_late_payment_mentions_the_refund(shopper, client, order):
    attempt = attempt_for(order)
    order_cancel(order_id=order.pk, reason="staff")
    post_webhook(client, event_body(attempt, "payment.succeeded"))

    block = _payment_block(shopper, order)

    assert 'data-testid="payment-status">Not paid (order cancelled)<' in block
    assert 'data-testid="refund-pending"' in block


def test_payment_block_fragment_is_the_owners_only(shopper, order):
    assert shopper.get(f"/orders/{order.pk}/payment-block/").status_code == 200
    stranger = Client()
    stranger.force_login(UserFactory())
    assert stranger.get(f"/orders/{order.pk}/payment-block/").status_code == 404


def test_order_list_payment_status_needs_no_query_per_order(user, django_assert_num_queries):
    for _ in range(4):
        attempt_for(place_order(user=user))

    # orders joined with invoices; lines; attempts; refunds: not one per order
    with django_assert_num_queries(4):
        statuses = [order_payment_status(order=o) for o in orders_for_list(user=user)]

    assert statuses == ["processing"] * 4


# --- Admin -----------------------------------------------------------------------------------


def test_admin_lists_attempts_with_filters_and_webhook_events_read_only(client, order):
    attempt = attempt_for(order)
    post_webhook(client, event_body(attempt, "payment.failed", failure_reason="Your card was declined."))
    admin = Client()
    admin.force_login(StaffFactory(is_superuser=True))

    attempts = admin.get("/admin/payments/paymentattempt/?status__exact=failed&refund_required__exact=0")
    by_provider = admin.get("/admin/payments/paymentattempt/?provider=simulated")
    detail = admin.get(f"/admin/payments/paymentattempt/{attempt.pk}/change/")
    events = admin.get("/admin/payments/webhookevent/")
    order_page = admin.get(f"/admin/orders/order/{order.pk}/change/")

    assert attempts.status_code == by_provider.status_code == detail.status_code == 200
    assert attempt.provider_reference in attempts.content.decode()
    assert "Your card was declined." in detail.content.decode()
    assert events.status_code == 200
    assert "payment.failed" in events.content.decode()
    assert admin.get("/admin/payments/webhookevent/add/").status_code == 403
    assert order_page.status_code == 200
    assert attempt.provider_reference in order_page.content.decode()  # attempts inline on the order
    assert PaymentAttempt.objects.get().failure_code == FailureCode.PROVIDER
    assert PaymentAttempt.objects.get().status == PaymentStatus.FAILED
    assert Order.objects.get().status == OrderStatus.PENDING_PAYMENT
