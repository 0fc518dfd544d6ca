"""Chaos, in `make test`: orders are paid through the real services while a real worker
holds charge, delivery and numbering messages; the worker is SIGKILLed, the broker loses
every message (FLUSHDB), some charge requests never reached the provider (their after-commit
call failed), and PostgreSQL connections are killed (`pg_terminate_backend`) while a new
worker with beat takes over. Nothing is stored only in Redis, so the sweepers finish
everything: every order is paid exactly once, its invoice numbered, numbers exactly 1..N.

Sweep intervals are beat's real schedule (10 s); the thresholds are shortened (leases,
resubmit and staleness of a few seconds) so the run takes about a minute.
"""

import threading
import time
from typing import Any

import psycopg
import psycopg.conninfo
import pytest
import redis
from django.conf import settings
from django.db import connection

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import WorkerProcess, broker_purge, place_order, wait_until, worker_env
from invoicing.models import Invoice, InvoiceStatus
from invoicing.selectors import invoice_gap_audit
from orders.models import Order, OrderStatus
from payments.models import PaymentAttempt, PaymentStatus, WebhookEvent
from payments.providers.simulated import SimulatedProvider
from payments.services import payment_attempt_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ORDERS = 24
LOST_CHARGES = 4  # their after-commit call to the provider fails: only beat's resubmit saves them
WEBHOOK_PATH = "/api/v1/webhooks/payments/"


def chaos_env(live_server: Any) -> dict[str, str]:
    return worker_env(
        PAYMENT_WEBHOOK_URL=live_server.url + WEBHOOK_PATH,
        INVOICE_FAILURE_RATE="0.5",
        INVOICE_RETRY_BASE_S="0.05",
        INVOICE_RETRY_MAX_S="0.5",
        INVOICE_SWEEP_STALE_S="3",
        PAYMENT_WEBHOOK_RETRY_BASE_S="0.2",
        PAYMENT_WEBHOOK_RETRY_MAX_S="1",
        PAYMENT_SIM_DELIVERY_LEASE_S="2",
        PAYMENT_CHARGE_RESUBMIT_S="2",
    )


class BackendKiller:
    """Terminates every other PostgreSQL connection to the test database, again and again
    (the web's, the worker's, beat's), sparing this test's own connection."""

    def __init__(self, *, spare_pid: int, every_s: float = 0.4) -> None:
        db = connection.settings_dict
        self.dsn = psycopg.conninfo.make_conninfo(
            dbname=db["NAME"], user=db["USER"] or "root", host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432
        )
        self.spare_pid = spare_pid
        self.every_s = every_s
        self.killed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.wait(self.every_s):
                rows = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid NOT IN (pg_backend_pid(), %s) AND backend_type = 'client backend'",
                    [self.spare_pid],
                ).fetchall()
                self.killed += sum(1 for (done,) in rows if done)

    def __enter__(self) -> "BackendKiller":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def test_killed_worker_flushed_broker_lost_charges_and_killed_connections_lose_nothing(live_server, monkeypatch):
    broker_purge()
    user, product = UserFactory(), ProductFactory(on_hand=500)
    orders = [place_order(user=user, product=product, quantity=1) for _ in range(ORDERS)]
    workers: list[WorkerProcess] = []
    try:
        # 1. A worker starts on the work: charges accepted, webhooks owed, invoices numbering.
        first = WorkerProcess(chaos_env(live_server), concurrency=2).start()
        workers.append(first)
        real_charge = SimulatedProvider.charge
        lost = {order.pk for order in orders[:LOST_CHARGES]}

        def charge(self: SimulatedProvider, *, attempt: PaymentAttempt, payment_method: str) -> None:
            if attempt.order_id in lost:
                raise redis.ConnectionError("the broker went away right after commit")
            real_charge(self, attempt=attempt, payment_method=payment_method)

        monkeypatch.setattr(SimulatedProvider, "charge", charge)
        for order in orders:
            payment_attempt_create(order_id=order.pk, user=user, payment_method="pm_card_success")
        monkeypatch.setattr(SimulatedProvider, "charge", real_charge)
        assert PaymentAttempt.objects.filter(charge_submitted_at__isnull=True).count() == LOST_CHARGES
        time.sleep(1.5)  # the worker is mid-flight: messages taken, some webhooks delivered

        # 2. SIGKILL, and the broker loses everything it held.
        first.kill()
        redis.Redis.from_url(settings.REDIS_URL).flushdb()
        midway = Order.objects.filter(status=OrderStatus.PAID).count()

        # 3. A new worker with beat; meanwhile PostgreSQL connections keep being killed.
        second = WorkerProcess(chaos_env(live_server), concurrency=2, beat=True).start()
        workers.append(second)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            own_pid = cursor.fetchone()[0]
        with BackendKiller(spare_pid=own_pid) as killer:
            # At least 8 s of killing, and on until the new worker's connections were hit (a
            # loaded machine may take longer than that to start it).
            time.sleep(8)
            wait_until(lambda: killer.killed > 0, timeout=30, message="a connection of the new worker killed")
        assert killer.killed > 0

        def done() -> bool:
            paid = Order.objects.filter(pk__in=[o.pk for o in orders], status=OrderStatus.PAID).count()
            return paid == ORDERS and not Invoice.objects.filter(status=InvoiceStatus.PENDING).exists()

        try:
            wait_until(done, timeout=120, interval=0.5, message="every order paid and numbered")
        except AssertionError as exc:
            paid = Order.objects.filter(status=OrderStatus.PAID).count()
            raise AssertionError(f"{exc}: {paid}/{ORDERS} paid\n{second.log()[-4000:]}") from exc
    finally:
        for worker in workers:
            worker.kill()

    # Exactly once: one succeeded attempt per order, nothing flagged for refund, one invoice each.
    assert midway < ORDERS  # the crash really interrupted the work
    assert PaymentAttempt.objects.filter(status=PaymentStatus.SUCCEEDED).count() == ORDERS
    assert not PaymentAttempt.objects.filter(refund_required=True).exists()
    assert WebhookEvent.objects.filter(event_type="payment.succeeded", changed_state=True).count() == ORDERS
    assert Invoice.objects.count() == ORDERS
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == list(range(1, ORDERS + 1))
    [audit] = [row for row in invoice_gap_audit() if row["series"] == settings.INVOICE_SERIES]
    assert (audit["count"], audit["missing"]) == (ORDERS, [])
