"""Operations with a real Celery worker process: the request id travels from the web
request into the task's JSON log lines, the worker's heartbeat makes /health/ ready, and a
worker stopped with SIGTERM while an invoice waits for its retry loses nothing."""

import json
import os
import signal
import uuid

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import ADDRESS, WorkerProcess, place_order, wait_until, worker_env
from flows.order_paid import order_place_paid
from invoicing.models import Invoice, InvoiceStatus
from orders.services import cart_add_item, cart_get_or_create
from outbox.models import OutboxEvent

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def json_lines(text: str) -> list[dict]:
    lines = []
    for raw in text.splitlines():
        raw = raw.strip()
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
    return lines


@pytest.fixture
def worker():
    started: list[WorkerProcess] = []

    def start(**env: str) -> WorkerProcess:
        process = WorkerProcess(worker_env(LOG_FORMAT="json", **env), concurrency=2).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def test_request_id_reaches_the_task_log_and_the_outbox(worker):
    process = worker()
    client = APIClient()
    wait_until(
        lambda: client.get("/health/").status_code == 200,
        timeout=60,
        message="the worker's heartbeat makes /health/ ready",
    )
    assert client.get("/health/").json()["components"]["worker"]["status"] == "ok"

    user = UserFactory()
    cart_add_item(cart=cart_get_or_create(user=user), sku=ProductFactory(on_hand=5).sku, quantity=1)
    client.force_authenticate(user)
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    response = client.post(
        "/api/v1/checkout/",
        {"shipping_address": ADDRESS},
        format="json",
        HTTP_IDEMPOTENCY_KEY="rid-1",
        HTTP_X_REQUEST_ID=request_id,
    )
    assert response.status_code == 201
    assert response["X-Request-ID"] == request_id

    # The checkout's outbox events carry the request id; committing them enqueued the relay.
    events = OutboxEvent.objects.filter(aggregate_type="orders.order", aggregate_id=str(response.json()["id"]))
    assert events.exists()
    assert all(e.metadata["request_id"] == request_id for e in events)

    def task_lines() -> list[dict]:
        return [line for line in json_lines(process.log()) if line.get("request_id") == request_id]

    wait_until(
        lambda: any(line.get("event") == "task_succeeded" for line in task_lines()),
        timeout=60,
        message="a JSON task log line carrying the request id",
    )
    started = [line for line in task_lines() if line.get("event") == "task_started"]
    assert started
    assert started[0]["task"] == "outbox.relay"
    assert started[0]["task_id"]
    assert started[0]["level"] == "info"
    wait_until(lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists(), timeout=30)


def test_sigterm_while_an_invoice_waits_for_its_retry_loses_nothing(worker):
    """The retry is a message with an ETA held, unacknowledged, by the worker. On a warm
    shutdown (SIGTERM) kombu's Redis transport puts unacknowledged messages back on the
    queue; the next worker runs the retry. (The sweeper is the second line of defence,
    for a worker killed with SIGKILL; no beat runs here, so it plays no part.)"""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("celery", "unacked", "unacked_index")  # this run's broker: start from an empty queue
    first = worker(INVOICE_FAILURE_RATE="1", INVOICE_FAULT_RETRY_BASE_S="12", INVOICE_FAULT_RETRY_MAX_S="12")
    order = place_order(user=UserFactory())
    order_place_paid(order_id=order.pk)  # commits: the numbering task is enqueued
    invoice = Invoice.objects.get(order=order)

    wait_until(lambda: Invoice.objects.get(pk=invoice.pk).attempts >= 1, timeout=60, message="a failed attempt")

    def retry_held() -> bool:
        # The trigger's "received" lines are DEBUG (common.logs: most triggers are answered
        # by an earlier batch); its retry is logged at INFO. Held: off the queue, unacked.
        retried = [
            line
            for line in json_lines(first.log())
            if "retry:" in str(line.get("event", ""))
            and "invoicing.assign_invoice_number" in str(line.get("event", ""))
        ]
        return bool(retried) and broker.llen("celery") == 0 and broker.hlen("unacked") >= 1

    wait_until(retry_held, timeout=30, message="the worker holds the retry (ETA) message, unacknowledged")
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PENDING

    assert first.proc is not None
    os.kill(first.proc.pid, signal.SIGTERM)  # what `docker stop` / systemd send: the main process only
    assert first.proc.wait(timeout=60) == 0
    assert "Restoring" in first.log() or broker.llen("celery") >= 1
    assert broker.hlen("unacked") == 0, "a held message would only return after the visibility timeout"
    assert broker.llen("celery") == 1, "the retry message is back on the queue"
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PENDING

    worker(INVOICE_FAILURE_RATE="0")
    wait_until(
        lambda: Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.ISSUED,
        timeout=90,
        message="the new worker issues the invoice",
    )
    invoice.refresh_from_db()
    assert invoice.number == 1
    assert invoice.attempts == 2
