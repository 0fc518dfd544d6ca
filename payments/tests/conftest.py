"""A real Celery worker that delivers the simulated provider's webhooks over HTTP to the
live server, through a relay in front of it that a test can take down (endpoint outage)."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from common.tests.helpers import WorkerProcess, wait_until, worker_env

WEBHOOK_PATH = "/api/v1/webhooks/payments/"
SLOW_S = 3


class WebhookRelay:
    """Forwards POSTs to the app's webhook endpoint unchanged (raw body and headers), or
    answers 503 while `down`: the provider's view of an outage."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.down = False
        self.refused = 0
        self.forwarded = 0
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if relay.down:
                    relay.refused += 1
                    status, content = 503, b'{"error": "down for maintenance"}'
                else:
                    relay.forwarded += 1
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                    upstream = requests.post(relay.target, data=body, headers=headers, timeout=30)
                    status, content = upstream.status_code, upstream.content
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{WEBHOOK_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "WebhookRelay":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def webhook_relay(live_server: Any) -> Iterator[WebhookRelay]:
    with WebhookRelay(live_server.url + WEBHOOK_PATH) as relay:
        yield relay


@pytest.fixture(scope="module")
def payments_worker(django_db_setup: Any, webhook_relay: WebhookRelay) -> Iterator[WorkerProcess]:
    """One worker per module (stopped at its end, so it never serves other apps' tests)."""
    from config.celery import app

    app.control.purge()  # messages left by earlier tests, for rows that no longer exist
    env = worker_env(
        PAYMENT_WEBHOOK_URL=webhook_relay.url,
        PAYMENT_SIM_SLOW_S=str(SLOW_S),
        PAYMENT_WEBHOOK_RETRY_BASE_S="0.2",
        PAYMENT_WEBHOOK_RETRY_MAX_S="1",
        INVOICE_FAILURE_RATE="0",
    )
    worker = WorkerProcess(env, concurrency=3).start()
    yield worker
    worker.stop()


@pytest.fixture
def relay_up(webhook_relay: WebhookRelay) -> Iterator[WebhookRelay]:
    webhook_relay.down = False
    yield webhook_relay
    webhook_relay.down = False


@pytest.fixture
def worker_settled(transactional_db: Any, payments_worker: WorkerProcess) -> Iterator[None]:
    """After the test, wait until the worker's follow-up work is done (every scripted
    webhook received, a refund's webhooks delivered, invoices and credit notes numbered)
    before the database is flushed: a TRUNCATE racing a multi-table worker transaction can
    deadlock, and a late delivery would land in the next test. (The outbox relay touches one
    table only; it cannot deadlock the flush.)"""
    yield
    from invoicing.models import CreditNote, CreditNoteStatus, Invoice, InvoiceStatus
    from payments.models import DeliveryStatus, PaymentAttempt, SimulatedDelivery, WebhookEvent
    from payments.providers.simulated import CANCEL_SCRIPT, simulated_script

    def quiet() -> bool:
        for attempt in PaymentAttempt.objects.exclude(charge_requested_at=None):
            script = attempt.payment_method or CANCEL_SCRIPT
            expected = len({step.key for step in simulated_script(script)})
            if WebhookEvent.objects.filter(attempt=attempt).count() < expected:
                return False
        if SimulatedDelivery.objects.filter(refund__isnull=False, status=DeliveryStatus.SCHEDULED).exists():
            return False  # a refund's webhooks still owed (a flaky script sends them again)
        if CreditNote.objects.filter(status=CreditNoteStatus.PENDING).exists():
            return False
        return not Invoice.objects.filter(status=InvoiceStatus.PENDING).exists()

    wait_until(quiet, timeout=60, message="the worker's follow-up work to finish")
