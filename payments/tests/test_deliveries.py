"""The simulated provider's own durable deliveries: what it owes the shop is stored, sent in
order, retried with backoff, re-kicked when its message is lost, given up after the last
retry, and visible to staff (admin, /health/ warnings, /metrics) and to the shopper (the
order page says when a payment takes longer than usual)."""

import http.server
import threading
from datetime import timedelta

import pytest
import requests
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from common.tests.factories import StaffFactory
from common.tests.helpers import place_order
from payments.models import DeliveryStatus, PaymentAttempt, PaymentStatus, SimulatedDelivery, WebhookEvent
from payments.providers.simulated import (
    KICK_GRACE,
    simulated_deliveries_kick_due,
    simulated_delivery_run,
    simulated_delivery_schedule,
    webhook_deliver,
)
from payments.tests.helpers import attempt_for, record_delivery_kicks

pytestmark = pytest.mark.django_db


class Endpoint:
    """Stands in for the shop's webhook URL: answers each POST with the next status (or
    raises ConnectionError for None) and records the webhook-ids it was sent."""

    def __init__(self, monkeypatch, *statuses: int | None) -> None:
        self.statuses = list(statuses)
        self.sent: list[str] = []
        monkeypatch.setattr(requests.Session, "post", self.post)  # the provider's session

    def post(self, url, data, headers, timeout):
        self.sent.append(headers["webhook-id"])
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if status is None:
            raise requests.ConnectionError("connection refused")
        response = requests.Response()
        response.status_code = status
        response._content = b"nope" if status >= 300 else b""
        return response


@pytest.fixture
def kicks(monkeypatch):
    return record_delivery_kicks(monkeypatch)


@pytest.fixture
def paid_attempt(kicks, django_capture_on_commit_callbacks):
    """An attempt charged with `method`; the charge runs as after a real commit."""

    def make(method: str = "pm_card_success") -> PaymentAttempt:
        with django_capture_on_commit_callbacks(execute=True):
            return attempt_for(place_order(), payment_method=method)

    return make


@pytest.fixture
def attempt(paid_attempt) -> PaymentAttempt:
    return paid_attempt()


def _make_due(delivery: SimulatedDelivery) -> None:
    SimulatedDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_charging_stores_the_first_webhook_as_owed_and_kicks_it(attempt, kicks):
    [first] = SimulatedDelivery.objects.filter(attempt=attempt)
    # A card settles at once: its one webhook is the success (no `processing` first).
    assert (first.step, first.event_type, first.status, first.tries) == (0, "payment.succeeded", "scheduled", 0)
    assert first.event_id == f"evt_{attempt.provider_reference}_succeeded"
    assert first.url.endswith("/api/v1/webhooks/payments/")
    assert [k["delivery_id"] for k in kicks] == [first.pk]


def test_a_delivered_step_stores_the_next_one_and_is_never_sent_twice(
    paid_attempt, kicks, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.PAYMENT_SIM_SLOW_S = 0  # processing, then succeeded at once
    attempt = paid_attempt("pm_card_slow")
    endpoint = Endpoint(monkeypatch, 204)
    first = SimulatedDelivery.objects.get(attempt=attempt, step=0)

    with django_capture_on_commit_callbacks(execute=True):
        assert simulated_delivery_run(delivery_id=first.pk).outcome == "sent"
    assert simulated_delivery_run(delivery_id=first.pk).outcome == "skipped"  # a duplicate kick

    first.refresh_from_db()
    assert (first.status, first.tries, first.last_status_code, first.last_error) == ("delivered", 1, 204, "")
    assert first.delivered_at is not None
    second = SimulatedDelivery.objects.get(attempt=attempt, step=1)
    assert (second.event_type, second.status) == ("payment.succeeded", "scheduled")
    assert [k["step"] for k in kicks] == [0, 1]
    assert simulated_delivery_run(delivery_id=second.pk).outcome == "sent"
    reference = attempt.provider_reference
    assert endpoint.sent == [f"evt_{reference}_processing", f"evt_{reference}_succeeded"]
    assert not SimulatedDelivery.objects.filter(attempt=attempt, step=2).exists()


def test_a_failed_try_records_the_error_and_waits_for_its_backoff(
    attempt, kicks, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.PAYMENT_WEBHOOK_RETRY_BASE_S = 4.0
    Endpoint(monkeypatch, 500)
    first = SimulatedDelivery.objects.get(attempt=attempt, step=0)

    with django_capture_on_commit_callbacks(execute=True):
        result = simulated_delivery_run(delivery_id=first.pk)

    assert result.outcome == "failed"
    assert 2.0 <= result.retry_in_s <= 4.0  # equal jitter: half of the ceiling fixed
    first.refresh_from_db()
    assert (first.status, first.tries, first.last_status_code) == ("scheduled", 1, 500)
    assert first.last_error.startswith("HTTP 500")
    assert first.next_attempt_at > timezone.now() + timedelta(seconds=1)
    assert [k["delivery_id"] for k in kicks] == [first.pk, first.pk]  # the retry's own kick
    assert simulated_delivery_run(delivery_id=first.pk).outcome == "skipped"  # not due yet


def test_retries_end_after_the_configured_count_without_touching_the_attempt(attempt, monkeypatch, settings):
    settings.PAYMENT_WEBHOOK_MAX_RETRIES = 3
    endpoint = Endpoint(monkeypatch, None)
    first = SimulatedDelivery.objects.get(attempt=attempt, step=0)

    outcomes = []
    for _ in range(6):
        outcomes.append(simulated_delivery_run(delivery_id=first.pk).outcome)
        _make_due(first)

    assert outcomes == ["failed", "failed", "failed", "abandoned", "skipped", "skipped"]
    assert endpoint.sent == [first.event_id] * 4  # first try + 3 retries, one webhook-id
    first.refresh_from_db()
    assert (first.status, first.tries) == ("abandoned", 4)
    assert "connection refused" in first.last_error
    attempt.refresh_from_db()
    assert attempt.status == PaymentStatus.PROCESSING
    assert not WebhookEvent.objects.exists()


def test_a_run_in_flight_holds_a_lease_so_a_second_run_does_not_send_it_again(attempt, monkeypatch):
    first = SimulatedDelivery.objects.get(attempt=attempt, step=0)
    inner: list[str] = []

    def post(url, data, headers, timeout):  # while this POST is in flight, the kick arrives again
        inner.append(simulated_delivery_run(delivery_id=first.pk).outcome)
        response = requests.Response()
        response.status_code = 200
        return response

    monkeypatch.setattr(requests.Session, "post", staticmethod(post))
    assert simulated_delivery_run(delivery_id=first.pk).outcome == "sent"
    assert inner == ["skipped"]


def test_beat_rekicks_only_scheduled_deliveries_whose_time_has_passed(
    attempt, kicks, paid_attempt, django_capture_on_commit_callbacks
):
    now = timezone.now()
    lost = SimulatedDelivery.objects.get(attempt=attempt, step=0)
    SimulatedDelivery.objects.filter(pk=lost.pk).update(next_attempt_at=now - KICK_GRACE - timedelta(seconds=1))
    later = simulated_delivery_schedule(
        attempt=attempt, script="pm_card_slow", step=1, started_at=now, due_at=now + timedelta(minutes=5)
    )
    other = paid_attempt("pm_card_declined")
    done = SimulatedDelivery.objects.get(attempt=other, step=0)
    SimulatedDelivery.objects.filter(pk=done.pk).update(
        status=DeliveryStatus.DELIVERED, delivered_at=now, next_attempt_at=now - timedelta(hours=1)
    )
    kicks.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert simulated_deliveries_kick_due(now=now) == 1
    assert [k["delivery_id"] for k in kicks] == [lost.pk]
    assert later.pk not in [k["delivery_id"] for k in kicks]


def test_schedule_is_idempotent_per_attempt_and_step(attempt, kicks):
    first = SimulatedDelivery.objects.get(attempt=attempt, step=0)
    again = simulated_delivery_schedule(
        attempt=attempt, script="pm_card_success", step=0, started_at=first.started_at, due_at=timezone.now()
    )
    assert again.pk == first.pk
    assert SimulatedDelivery.objects.filter(attempt=attempt).count() == 1
    assert len(kicks) == 1


# --- what staff and shoppers see ------------------------------------------------------------------


def _failing(attempt: PaymentAttempt, *, tries: int) -> SimulatedDelivery:
    first = SimulatedDelivery.objects.get(attempt=attempt, step=0)
    SimulatedDelivery.objects.filter(pk=first.pk).update(
        tries=tries,
        last_error="ConnectionError: connection refused",
        next_attempt_at=timezone.now() + timedelta(seconds=30),
        url="http://127.0.0.1:8100/api/v1/webhooks/payments/",
    )
    return first


def test_health_warns_about_failing_deliveries_without_turning_unready(attempt, client):
    quiet = client.get("/health/").json()
    assert quiet["warnings"] == []
    assert quiet["backlogs"]["webhook_deliveries"]["status"] == "ok"

    _failing(attempt, tries=3)
    body = client.get("/health/").json()

    assert body["warnings"] == ["webhook_deliveries"]
    backlog = body["backlogs"]["webhook_deliveries"]
    assert (backlog["status"], backlog["scheduled"], backlog["failing"], backlog["max_tries"]) == ("warning", 1, 1, 3)
    assert backlog["last_error"] == "ConnectionError: connection refused"


def test_health_warns_about_deliveries_long_overdue(attempt, client):
    first = SimulatedDelivery.objects.get(attempt=attempt, step=0)
    SimulatedDelivery.objects.filter(pk=first.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=2))
    backlog = client.get("/health/").json()["backlogs"]["webhook_deliveries"]
    assert backlog["status"] == "warning"
    assert backlog["oldest_due_s"] >= 119


def test_metrics_count_owed_and_failing_deliveries(attempt, client):
    _failing(attempt, tries=2)
    client.force_login(StaffFactory())
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = {s.name: s.value for f in text_string_to_metric_families(response.content.decode()) for s in f.samples}
    assert samples["payment_webhook_deliveries_scheduled"] == 1
    assert samples["payment_webhook_deliveries_failing"] == 1
    assert samples["payment_webhook_deliveries_abandoned"] == 0


def test_admin_shows_the_delivery_state_on_the_attempt_and_lists_failing_ones(attempt, client):
    _failing(attempt, tries=4)
    client.force_login(StaffFactory(is_superuser=True))

    page = client.get(reverse("admin:payments_paymentattempt_change", args=[attempt.pk])).content.decode()
    assert "provider webhook deliveries" in page.lower()
    assert "ConnectionError: connection refused" in page
    assert "http://127.0.0.1:8100/api/v1/webhooks/payments/" in page

    changelist = reverse("admin:payments_simulateddelivery_changelist")
    failing = client.get(changelist, {"state": "failing"}).content.decode()
    assert "ConnectionError: connection refused" in failing
    assert client.get(changelist, {"state": "delivered"}).content.decode().count("connection refused") == 0


def test_order_page_says_when_the_payment_takes_longer_than_usual(attempt, client, settings):
    settings.PAYMENT_SLOW_NOTICE_S = 30
    client.force_login(attempt.order.user)
    block_url = reverse("order-payment-block", args=[attempt.order_id])

    fresh = client.get(block_url).content.decode()
    assert 'data-state="processing"' in fresh
    assert "payment-slow" not in fresh
    assert "updates by itself" in fresh

    PaymentAttempt.objects.filter(pk=attempt.pk).update(charge_requested_at=timezone.now() - timedelta(seconds=31))
    slow = client.get(block_url).content.decode()
    assert 'data-testid="payment-slow"' in slow
    assert "taking longer than usual" in slow
    assert "updates by itself" not in slow
    assert 'data-polling="true"' in slow  # the page keeps checking while the outcome can still arrive


class _KeepAliveShop(http.server.BaseHTTPRequestHandler):
    """A shop endpoint over HTTP/1.1 that records the client port of every webhook; with
    `close_after` it closes each connection after that many answers, as gunicorn does to an
    idle keep-alive connection."""

    protocol_version = "HTTP/1.1"
    ports: list[int]
    close_after = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.ports.append(self.client_address[1])
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        served = sum(1 for port in self.ports if port == self.client_address[1])
        if self.close_after and served >= self.close_after:
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("close_after", [0, 1])
def test_webhooks_reuse_the_providers_connection_and_survive_the_shop_closing_it(close_after):
    handler = type("Shop", (_KeepAliveShop,), {"ports": [], "close_after": close_after})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api/v1/webhooks/payments/"
    try:
        statuses = [webhook_deliver(url=url, msg_id=f"msg_{n}", body="{}") for n in range(5)]
    finally:
        server.shutdown()
        server.server_close()
    assert statuses == [200] * 5
    assert len(handler.ports) == 5
    # One connection for all five, or a new one each time the shop closed the last one.
    assert len(set(handler.ports)) == (1 if close_after == 0 else 5)
