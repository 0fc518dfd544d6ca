"""The Stripe provider: the real `stripe` SDK over real HTTP to a local fake Stripe
(payments/tests/fake_stripe.py), and webhooks signed with Stripe's scheme (computed in the
fake, independently of the SDK and of the app) posted to POST /api/v1/webhooks/stripe/."""

import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from hypothesis import given
from hypothesis import strategies as st

from common.errors import ValidationFailed
from common.tests.factories import ProductFactory
from common.tests.helpers import place_order
from orders.models import Order, OrderStatus
from outbox.models import OutboxEvent
from payments.models import FailureCode, PaymentAttempt, PaymentStatus, WebhookEvent
from payments.providers import payment_provider
from payments.providers.stripe import (
    EXPIRED_REASON,
    PaymentProviderUnavailable,
    RefundRefused,
    StripeProvider,
    from_minor_units,
    stripe_amount_check,
    stripe_references,
    to_minor_units,
)
from payments.services import payment_attempt_create, payment_charge_submit
from payments.tests.fake_stripe import FakeStripe

STRIPE_PATH = "/api/v1/webhooks/stripe/"
SECRET = "whsec_test_c3RyaXBlLWZha2Utc2VjcmV0"


# --- Minor units -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "units"),
    [
        ("12.50", "EUR", 1250),
        ("0.01", "usd", 1),
        ("500", "JPY", 500),
        ("1000", "CLP", 1000),
        ("1.235", "KWD", 1235),
        ("0.100", "BHD", 100),
        ("500", "ISK", 50000),  # Stripe keeps ISK two-decimal
        ("99999999.99", "EUR", 9999999999),
    ],
)
def test_minor_units_both_ways(amount, currency, units):
    assert to_minor_units(Decimal(amount), currency) == units
    back = from_minor_units(units, currency)
    assert back == Decimal(amount)
    assert back.as_tuple().exponent == {"JPY": 0, "CLP": 0, "KWD": -3, "BHD": -3}.get(currency, -2)


@pytest.mark.parametrize(
    ("amount", "currency"), [("1.5", "JPY"), ("1.005", "EUR"), ("1.2345", "KWD"), ("0.001", "ISK")]
)
def test_minor_units_never_round(amount, currency):
    with pytest.raises(ValueError, match="more decimals"):
        to_minor_units(Decimal(amount), currency)


@pytest.mark.parametrize("bad", [1.5, "12", Decimal("NaN"), Decimal("Infinity")])
def test_minor_units_refuse_floats_and_non_finite(bad):
    with pytest.raises(ValueError, match="not a finite Decimal"):
        to_minor_units(bad, "EUR")


def test_stripe_card_rules_for_three_decimals_and_isk():
    stripe_amount_check(1230, "KWD")
    stripe_amount_check(50000, "ISK")
    with pytest.raises(ValidationFailed, match=r"multiples of 0\.010"):
        stripe_amount_check(1235, "KWD")
    with pytest.raises(ValidationFailed, match="whole"):
        stripe_amount_check(50050, "ISK")


CURRENCIES = ["EUR", "USD", "GBP", "JPY", "KRW", "CLP", "VND", "KWD", "BHD", "JOD", "TND", "OMR", "ISK"]


@given(units=st.integers(min_value=0, max_value=10**15), currency=st.sampled_from(CURRENCIES))
def test_minor_units_round_trip_from_units(units, currency):
    assert to_minor_units(from_minor_units(units, currency), currency) == units


@given(
    amount=st.decimals(min_value=0, max_value=10**12, allow_nan=False, allow_infinity=False, places=3),
    currency=st.sampled_from(CURRENCIES),
)
def test_minor_units_round_trip_from_amounts(amount, currency):
    try:
        units = to_minor_units(amount, currency)
    except ValueError:
        # Only an amount with more decimals than the currency may be refused.
        exponent = {"JPY": 0, "KRW": 0, "CLP": 0, "VND": 0}.get(currency, 3 if currency in "KWD BHD JOD TND OMR" else 2)
        assert amount != amount.quantize(Decimal(1).scaleb(-exponent))
        return
    assert from_minor_units(units, currency) == amount


# --- Fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def fake(settings):
    with FakeStripe(webhook_secret=SECRET) as fake:
        settings.PAYMENT_PROVIDER = "stripe"
        settings.STRIPE_SECRET_KEY = "sk_test_fake"
        settings.STRIPE_WEBHOOK_SECRET = SECRET
        settings.STRIPE_API_BASE = fake.url
        settings.STRIPE_TIMEOUT_S = 5.0
        settings.STRIPE_MAX_NETWORK_RETRIES = 2
        yield fake


@pytest.fixture
def order(db):
    return place_order(product=ProductFactory(on_hand=10, price=Decimal("12.50")), quantity=2)


@pytest.fixture
def hosted(fake, order) -> PaymentAttempt:
    """A hosted attempt: the pay step without a method opened a Checkout Session."""
    return payment_attempt_create(order_id=order.pk, user=order.user)


def post_event(client: Any, event: dict[str, Any], *, signature: str | None = None, raw: str | None = None) -> Any:
    raw = raw if raw is not None else json.dumps(event)
    headers = {} if signature == "" else {"Stripe-Signature": signature or _sign(raw)}
    return client.post(STRIPE_PATH, data=raw, content_type="application/json", headers=headers)


def _sign(raw: str, **kwargs: Any) -> str:
    return FakeStripe(webhook_secret=SECRET).signature(raw, **kwargs)


def snapshot(order: Order) -> dict[str, Any]:
    return {
        "order": Order.objects.get(pk=order.pk).status,
        "attempts": list(
            PaymentAttempt.objects.filter(order=order)
            .order_by("id")
            .values_list("status", "failure_code", "failure_reason", "refund_required", "completed_at")
        ),
        "outbox": sorted(OutboxEvent.objects.values_list("event_type", flat=True)),
        "webhook_events": WebhookEvent.objects.count(),
    }


# --- The pay step opens a Checkout Session ------------------------------------------------------


@pytest.mark.django_db
def test_the_pay_step_opens_a_checkout_session_with_a_key_derived_from_the_attempt(fake, order, client_for):
    client = client_for(order.user)

    response = client.post(f"/api/v1/orders/{order.pk}/payments/", {}, format="json", HTTP_IDEMPOTENCY_KEY="pay-1")

    assert response.status_code == 201, response.content
    attempt = PaymentAttempt.objects.get(order=order)
    session = fake.only_session()
    assert response.json()["redirect_url"] == session["url"] == attempt.redirect_url
    assert (attempt.provider, attempt.status) == ("stripe", PaymentStatus.PROCESSING)
    (call,) = fake.calls("/v1/checkout/sessions")
    assert call.idempotency_key == f"{attempt.provider_reference}:checkout-session"
    assert call.params["line_items[0][price_data][unit_amount]"] == str(int(order.total * 100))
    assert call.params["line_items[0][price_data][currency]"] == "eur"
    assert call.params["client_reference_id"] == attempt.provider_reference
    assert call.params["metadata[shop_reference]"] == attempt.provider_reference
    assert call.params["payment_intent_data[metadata][shop_reference]"] == attempt.provider_reference
    assert call.params["success_url"].endswith(f"/orders/{order.pk}/")
    assert 31 * 60 - 5 <= int(call.params["expires_at"]) - time.time() <= 24 * 3600


@pytest.mark.django_db
def test_stripe_unreachable_refuses_the_attempt_and_stores_nothing(fake, order, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # discard port: connection refused
    settings.STRIPE_MAX_NETWORK_RETRIES = 1

    with pytest.raises(PaymentProviderUnavailable):
        payment_attempt_create(order_id=order.pk, user=order.user)

    assert not PaymentAttempt.objects.exists()
    assert not OutboxEvent.objects.filter(event_type="payment.created").exists()


@pytest.mark.django_db
def test_a_timed_out_session_request_is_retried_with_the_same_key_and_opens_one_session(fake, order, settings):
    settings.STRIPE_TIMEOUT_S = 0.5
    fake.stall_s = 1.5
    fake.stalls["/v1/checkout/sessions"] = 1  # created at Stripe, answer lost

    attempt = payment_attempt_create(order_id=order.pk, user=order.user)

    calls = fake.calls("/v1/checkout/sessions")
    assert len(calls) == 2
    assert {c.idempotency_key for c in calls} == {f"{attempt.provider_reference}:checkout-session"}
    assert [c.replayed for c in calls] == [False, True]
    assert len(fake.sessions) == 1
    assert attempt.redirect_url == fake.only_session()["url"]


# --- Webhooks: outcomes -------------------------------------------------------------------------


@pytest.mark.django_db
def test_checkout_completed_pays_the_order(client, fake, order, hosted):
    session = fake.complete_session(fake.only_session()["id"])

    response = post_event(client, fake.event("checkout.session.completed", session))

    assert response.status_code == 200, response.content
    assert response.json()["changed_state"] is True
    attempt = PaymentAttempt.objects.get(pk=hosted.pk)
    assert attempt.status == PaymentStatus.SUCCEEDED
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    (record,) = WebhookEvent.objects.all()
    assert (record.provider, record.attempt_id, record.changed_state) == ("stripe", hosted.pk, True)


@pytest.mark.django_db
def test_the_api_flow_charges_a_payment_method_and_payment_intent_succeeded_pays(
    client, fake, order, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        attempt = payment_attempt_create(order_id=order.pk, user=order.user, payment_method="pm_card_visa")

    (call,) = fake.calls("/v1/payment_intents")
    assert call.idempotency_key == f"{attempt.provider_reference}:payment-intent"
    assert (call.params["amount"], call.params["currency"], call.params["confirm"]) == (
        str(int(order.total * 100)),
        "eur",
        "true",
    )
    (intent,) = fake.payment_intents.values()
    assert PaymentAttempt.objects.get(pk=attempt.pk).charge_submitted_at is not None

    response = post_event(client, fake.event("payment_intent.succeeded", intent))

    assert response.status_code == 200
    assert PaymentAttempt.objects.get(pk=attempt.pk).status == PaymentStatus.SUCCEEDED
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


@pytest.mark.django_db
def test_a_declined_api_charge_fails_the_attempt(client, fake, order, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        attempt = payment_attempt_create(order_id=order.pk, user=order.user, payment_method="pm_card_chargeDeclined")
    (intent,) = fake.payment_intents.values()
    assert PaymentAttempt.objects.get(pk=attempt.pk).charge_submitted_at is not None  # a decline is an outcome

    response = post_event(client, fake.event("payment_intent.payment_failed", intent))

    assert response.status_code == 200
    attempt.refresh_from_db()
    assert (attempt.status, attempt.failure_code, attempt.failure_reason) == (
        PaymentStatus.FAILED,
        FailureCode.PROVIDER,
        "Your card was declined.",
    )
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT


@pytest.mark.django_db
def test_a_decline_on_the_checkout_page_is_recorded_and_a_second_card_still_pays(client, fake, order, hosted):
    session_id = fake.only_session()["id"]
    declined = fake.decline_in_session(session_id)

    first = post_event(client, fake.event("payment_intent.payment_failed", declined))

    assert first.status_code == 200
    assert first.json()["changed_state"] is False
    assert PaymentAttempt.objects.get(pk=hosted.pk).status == PaymentStatus.PROCESSING
    assert WebhookEvent.objects.get().event_type == "payment_intent.payment_failed"

    second = post_event(client, fake.event("checkout.session.completed", fake.complete_session(session_id)))

    assert second.json()["changed_state"] is True
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


@pytest.mark.django_db
def test_an_expired_session_fails_the_attempt(client, fake, order, hosted):
    session = fake.expire_session(fake.only_session()["id"])

    response = post_event(client, fake.event("checkout.session.expired", session))

    assert response.status_code == 200
    attempt = PaymentAttempt.objects.get(pk=hosted.pk)
    assert (attempt.status, attempt.failure_reason) == (PaymentStatus.FAILED, EXPIRED_REASON)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT


@pytest.mark.django_db
def test_a_duplicate_event_changes_state_once(client, fake, order, hosted):
    event = fake.event("checkout.session.completed", fake.complete_session(fake.only_session()["id"]))

    first = post_event(client, event)
    after_first = snapshot(order)
    second = post_event(client, event)

    assert (first.json()["duplicate"], second.json()["duplicate"]) == (False, True)
    assert second.json()["changed_state"] is False
    assert snapshot(order) == after_first
    assert OutboxEvent.objects.filter(event_type="payment.succeeded").count() == 1
    assert WebhookEvent.objects.count() == 1


@pytest.mark.django_db
def test_reordered_events_change_state_once_and_only_forward(client, fake, order, hosted):
    session_id = fake.only_session()["id"]
    session = fake.complete_session(session_id)
    intent = fake.payment_intents[session["payment_intent"]]
    processing = {**intent, "status": "processing"}
    old = int(time.time()) - 60

    responses = [
        post_event(client, fake.event("payment_intent.succeeded", intent)),
        post_event(client, fake.event("checkout.session.completed", session)),
        post_event(client, fake.event("payment_intent.processing", processing, created=old)),  # stale, late
        post_event(client, fake.event("checkout.session.expired", {**session, "status": "expired"})),
    ]

    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    assert [r.json()["changed_state"] for r in responses] == [True, False, False, False]
    assert PaymentAttempt.objects.get(pk=hosted.pk).status == PaymentStatus.SUCCEEDED
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert OutboxEvent.objects.filter(event_type="payment.succeeded").count() == 1
    assert WebhookEvent.objects.count() == 4


@pytest.mark.django_db
def test_a_wrong_amount_fails_the_attempt_and_flags_a_refund(client, fake, order, hosted):
    session = {**fake.complete_session(fake.only_session()["id"]), "amount_total": 100}

    post_event(client, fake.event("checkout.session.completed", session))

    attempt = PaymentAttempt.objects.get(pk=hosted.pk)
    assert (attempt.status, attempt.failure_code, attempt.refund_required) == (
        PaymentStatus.FAILED,
        FailureCode.MISMATCH,
        True,
    )
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT


@pytest.mark.django_db
def test_an_unknown_event_type_is_acknowledged_recorded_and_changes_nothing(client, fake, order, hosted):
    before = snapshot(order)
    event = fake.event("customer.created", {"id": "cus_test_1", "object": "customer", "metadata": {}})

    response = post_event(client, event)
    again = post_event(client, event)

    assert response.status_code == 200
    assert response.json() == {
        "received": True,
        "duplicate": False,
        "changed_state": False,
        "outcome": "ignored: event type customer.created is not acted on",
    }
    assert again.json()["duplicate"] is True
    (record,) = WebhookEvent.objects.all()
    assert (record.webhook_id, record.event_type, record.changed_state) == (event["id"], "customer.created", False)
    assert {k: v for k, v in snapshot(order).items() if k != "webhook_events"} == {
        k: v for k, v in before.items() if k != "webhook_events"
    }


@pytest.mark.django_db
def test_an_event_for_an_object_the_shop_did_not_create_changes_nothing(client, fake, order, hosted):
    before = snapshot(order)
    foreign = {"id": "pi_other", "object": "payment_intent", "amount": 2500, "amount_received": 2500,
               "currency": "eur", "metadata": {}}  # fmt: skip

    response = post_event(client, fake.event("payment_intent.succeeded", foreign))

    assert (response.status_code, response.json()["changed_state"]) == (200, False)
    assert snapshot(order)["attempts"] == before["attempts"]


# --- Webhooks: refusals (400 webhook_signature_invalid, nothing stored) ------------------------------


def _tampered(raw: str) -> tuple[str, str]:
    return raw.replace('"paid"', '"unpaid"'), _sign(raw)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "case", ["missing", "wrong-secret", "tampered", "stale", "future", "malformed", "v0-only", "not-configured"]
)
def test_a_bad_or_missing_signature_is_refused_and_nothing_is_stored(client, fake, order, hosted, settings, case):
    event = fake.event("checkout.session.completed", fake.complete_session(fake.only_session()["id"]))
    raw = json.dumps(event)
    signature = {
        "missing": "",
        "wrong-secret": _sign(raw, secret="whsec_someone_else"),
        "stale": _sign(raw, timestamp=int(time.time()) - 301),
        "future": _sign(raw, timestamp=int(time.time()) + 301),
        "malformed": "t=abc,v1=zz",
        "v0-only": _sign(raw).replace("v1=", "v0="),
        "not-configured": _sign(raw),
    }.get(case)
    if case == "tampered":
        raw, signature = _tampered(raw)
    if case == "not-configured":
        settings.STRIPE_WEBHOOK_SECRET = ""
    before = snapshot(order)

    response = post_event(client, event, signature=signature, raw=raw)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "webhook_signature_invalid"
    assert snapshot(order) == before
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_a_signature_within_the_tolerance_is_accepted(client, fake, order, hosted):
    event = fake.event("checkout.session.completed", fake.complete_session(fake.only_session()["id"]))
    raw = json.dumps(event)

    response = post_event(client, event, signature=_sign(raw, timestamp=int(time.time()) - 240), raw=raw)

    assert response.status_code == 200
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


# --- Network failures: retried with the same key, charged once ------------------------------------


@pytest.mark.django_db
def test_a_timed_out_charge_is_retried_by_the_sdk_with_the_same_key_and_charges_once(
    fake, order, settings, django_capture_on_commit_callbacks
):
    settings.STRIPE_TIMEOUT_S = 0.5
    fake.stall_s = 1.5
    fake.stalls["/v1/payment_intents"] = 1  # the charge happened at Stripe; its answer is lost

    with django_capture_on_commit_callbacks(execute=True):
        attempt = payment_attempt_create(order_id=order.pk, user=order.user, payment_method="pm_card_visa")

    calls = fake.calls("/v1/payment_intents")
    assert len(calls) == 2
    assert {c.idempotency_key for c in calls} == {f"{attempt.provider_reference}:payment-intent"}
    assert [c.replayed for c in calls] == [False, True]
    assert len(fake.payment_intents) == 1
    assert PaymentAttempt.objects.get(pk=attempt.pk).charge_submitted_at is not None


@pytest.mark.django_db
def test_a_charge_lost_after_the_sdk_gave_up_is_resubmitted_with_the_same_key_and_charges_once(
    fake, order, settings, django_capture_on_commit_callbacks
):
    settings.STRIPE_TIMEOUT_S = 0.5
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    fake.stall_s = 1.0
    fake.stalls["/v1/payment_intents"] = 1

    with django_capture_on_commit_callbacks(execute=True):  # the after-commit call fails (logged)
        attempt = payment_attempt_create(order_id=order.pk, user=order.user, payment_method="pm_card_visa")
    assert PaymentAttempt.objects.get(pk=attempt.pk).charge_submitted_at is None

    # what beat's resubmission calls, with the attempt as it is now
    assert payment_charge_submit(attempt=PaymentAttempt.objects.get(pk=attempt.pk)) is True

    calls = fake.calls("/v1/payment_intents")
    assert [c.idempotency_key for c in calls] == [f"{attempt.provider_reference}:payment-intent"] * 2
    assert len(fake.payment_intents) == 1


# --- Cancel and the refund seam -------------------------------------------------------------------


@pytest.mark.django_db
def test_cancel_expires_the_checkout_session(fake, hosted):
    StripeProvider().cancel(attempt=hosted)
    StripeProvider().cancel(attempt=hosted)  # again: Stripe answers the stored result

    assert fake.only_session()["status"] == "expired"
    keys = [c.idempotency_key for c in fake.calls("/v1/checkout/sessions/")]
    assert keys == [f"{hosted.provider_reference}:checkout-session-expire"] * 2


@pytest.mark.django_db
def test_refund_seam_refunds_once_per_key(fake, hosted):
    intent = fake.payment_intents[fake.complete_session(fake.only_session()["id"])["payment_intent"]]
    provider = StripeProvider()

    first = provider.refund(
        payment_intent=intent["id"], amount=Decimal("10.00"), currency="EUR", idempotency_key="refund-1"
    )
    again = provider.refund(
        payment_intent=intent["id"], amount=Decimal("10.00"), currency="EUR", idempotency_key="refund-1"
    )

    assert (first.id, first.status) == (again.id, "succeeded")
    assert [r["amount"] for r in fake.refunds.values()] == [1000]
    assert [c.idempotency_key for c in fake.calls("/v1/refunds")] == ["refund-1", "refund-1"]


@pytest.mark.django_db
def test_refund_seam_reports_a_refused_refund(fake, hosted):
    intent = fake.payment_intents[fake.complete_session(fake.only_session()["id"])["payment_intent"]]

    with pytest.raises(RefundRefused):
        StripeProvider().refund(
            payment_intent=intent["id"], amount=hosted.amount + Decimal("0.01"), currency="EUR", idempotency_key="r-2"
        )

    assert not fake.refunds


# --- Configuration, health, admin ------------------------------------------------------------------


def test_the_stripe_provider_is_registered():
    assert isinstance(payment_provider("stripe"), StripeProvider)


@pytest.mark.parametrize(
    ("env", "refused"),
    [
        ({"PAYMENT_PROVIDER": "stripe"}, True),
        ({"PAYMENT_PROVIDER": "stripe", "STRIPE_SECRET_KEY": "sk_test_x"}, True),
        ({"PAYMENT_PROVIDER": "stripe", "STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}, False),
        ({"PAYMENT_PROVIDER": "paypal"}, True),
    ],
)
def test_start_up_refuses_stripe_without_keys(env, refused):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "PAYMENT_PROVIDER"))}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings.test", **env},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode != 0) == refused, result.stderr[-2000:]
    if refused:
        assert "ImproperlyConfigured" in result.stderr


def test_with_stripe_the_pay_form_may_redirect_to_stripe_checkout():
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "PAYMENT_PROVIDER"))}
    code = "import django; django.setup(); from django.conf import settings as s; "
    code += "print(s.CONTENT_SECURITY_POLICY['DIRECTIVES']['form-action'])"
    env = {**base, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    stripe_env = {"PAYMENT_PROVIDER": "stripe", "STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}

    def form_action(extra: dict[str, str]) -> str:
        run = subprocess.run([sys.executable, "-c", code], env={**env, **extra}, cwd=settings.BASE_DIR,
                             capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        return run.stdout.strip().splitlines()[-1]

    assert form_action({}) == "[\"'self'\"]"
    assert form_action(stripe_env) == "[\"'self'\", 'https://checkout.stripe.com']"


@pytest.mark.django_db
def test_health_names_the_configured_provider(client, settings):
    assert client.get("/health/").json()["payments"] == {"provider": "simulated"}
    settings.PAYMENT_PROVIDER = "stripe"
    assert client.get("/health/").json()["payments"] == {"provider": "stripe"}


@pytest.mark.django_db
def test_admin_links_the_stripe_references_to_the_dashboard(client, fake, hosted, django_user_model):
    session = fake.complete_session(fake.only_session()["id"])
    post_event(client, fake.event("checkout.session.completed", session))
    refs = stripe_references(attempt=hosted)
    assert (refs.checkout_sessions, refs.payment_intents) == ([session["id"]], [session["payment_intent"]])
    admin = django_user_model.objects.create_superuser("root-admin", "root@example.com", "pw")
    client.force_login(admin)

    page = client.get(f"/admin/payments/paymentattempt/{hosted.pk}/change/").content.decode()

    assert f"https://dashboard.stripe.com/test/payments/{session['payment_intent']}" in page
    assert f"https://dashboard.stripe.com/test/checkout/sessions/{session['id']}" in page
