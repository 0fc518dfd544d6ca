"""The simulated provider's scripts, its signing (checked with the standardwebhooks library
itself), the provider registry, and the delivery task's retries."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from common.errors import ValidationFailed
from common.tests.helpers import place_order
from payments.providers import payment_provider
from payments.providers.base import PaymentEventType, WebhookSignatureInvalid, json_body, standard_webhook_sign
from payments.providers.simulated import SimulatedProvider, simulated_event, simulated_script
from payments.tasks import simulated_deliver
from payments.tests.helpers import attempt_for

pytestmark = pytest.mark.django_db

STARTED = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _events(attempt, script: str) -> list[dict]:
    return [
        simulated_event(attempt=attempt, script=script, step=i, started_at=STARTED)
        for i in range(len(simulated_script(script)))
    ]


@pytest.fixture
def attempt(monkeypatch):
    monkeypatch.setattr(simulated_deliver, "delay", lambda **kwargs: None)
    return attempt_for(place_order())


@pytest.mark.parametrize(
    ("script", "types"),
    [
        ("pm_card_success", ["payment.succeeded"]),
        ("pm_card_declined", ["payment.failed"]),
        ("pm_card_slow", ["payment.processing", "payment.succeeded"]),
        ("pm_card_flaky", ["payment.processing", "payment.succeeded", "payment.succeeded", "payment.processing"]),
        ("cancel", ["payment.processing", "payment.failed"]),
    ],
)
def test_cards_settle_at_once_and_only_later_settling_ones_say_processing(attempt, script, types):
    events = _events(attempt, script)

    assert [e["type"] for e in events] == types
    assert all(e["data"]["provider_reference"] == attempt.provider_reference for e in events)
    assert all(e["data"]["amount"] == f"{attempt.amount:.2f}" for e in events)


def test_flaky_repeats_the_success_with_one_id_then_sends_an_older_processing_event(attempt):
    processing, succeeded, again, stale = _events(attempt, "pm_card_flaky")

    assert again == succeeded  # the same event, byte for byte: one webhook-id
    assert stale["id"] not in {processing["id"], succeeded["id"]}
    assert datetime.fromisoformat(stale["created_at"]) < datetime.fromisoformat(succeeded["created_at"])


def test_slow_succeeds_after_the_configured_delay(attempt, settings):
    settings.PAYMENT_SIM_SLOW_S = 7.5

    steps = simulated_script("pm_card_slow")
    _, succeeded = _events(attempt, "pm_card_slow")

    assert [s.delay_s for s in steps] == [0.0, 7.5]
    assert datetime.fromisoformat(succeeded["created_at"]) - STARTED == timedelta(seconds=7.5, milliseconds=1)


def test_declined_reports_the_reason(attempt):
    [failed] = _events(attempt, "pm_card_declined")

    assert failed["data"]["failure_reason"] == "Your card was declined."


def test_signature_is_standard_webhooks_and_verified_on_the_raw_body(attempt, settings):
    body = json_body(_events(attempt, "pm_card_success")[0])
    headers = standard_webhook_sign(
        secret=settings.PAYMENT_WEBHOOK_SECRET, msg_id="msg_1", timestamp=timezone.now(), body=body
    )

    assert Webhook(settings.PAYMENT_WEBHOOK_SECRET).verify(body, headers) == json.loads(body)  # the library agrees
    event = SimulatedProvider().parse_webhook(body=body.encode(), headers=headers)
    assert (event.webhook_id, event.type, event.amount) == ("msg_1", PaymentEventType.SUCCEEDED, attempt.amount)
    with pytest.raises(WebhookSignatureInvalid):
        SimulatedProvider().parse_webhook(body=body.replace("EUR", "USD").encode(), headers=headers)
    with pytest.raises(WebhookSignatureInvalid):
        SimulatedProvider().parse_webhook(body=b"\xff\xfe", headers=headers)


def test_provider_registry_and_method_validation(settings):
    assert payment_provider().name == "simulated"
    with pytest.raises(ValidationFailed):
        payment_provider().validate_method("pm_card_unknown")
    with pytest.raises(LookupError, match="paypal"):  # stripe is registered (payments/tests/test_stripe.py)
        payment_provider("paypal")
