"""Workers and beat reconnect by themselves after Redis and PostgreSQL restarts.

The worker (with embedded beat) reaches Redis and PostgreSQL through TCP proxies in this
test; a "restart" drops every open connection and refuses new ones for a few seconds, as a
restarting server does. Afterwards, with nobody touching the worker: a new paid order is
numbered (the worker consumes again and writes again), and an invoice whose numbering
message was lost is found by beat's sweeper (beat publishes again)."""

import contextlib
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection

from common.tests.factories import ProductFactory, UserFactory
from common.tests.helpers import WorkerProcess, broker_purge, place_order, wait_until, worker_env
from flows.order_paid import order_place_paid
from invoicing.models import Invoice, InvoiceStatus
from invoicing.tasks import assign_invoice_number

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OUTAGE_S = 4


class TcpProxy:
    """Forwards a local port to `target`; `restart()` drops every connection and refuses
    new ones for a while, then listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = self._free_port()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.accepted = 0

    @staticmethod
    def _free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def start(self) -> "TcpProxy":
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: the "server" is down
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.pairs.append((client, upstream))
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); stops listening now
            self.listener.close()
            self.listener = None
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for client, upstream in pairs:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def restart(self, down_s: float) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


def _paid_order(user, product) -> Invoice:
    order = place_order(user=user, product=product, quantity=1)
    order_place_paid(order_id=order.pk)
    return Invoice.objects.get(order=order)


def _issued(invoice: Invoice) -> bool:
    invoice.refresh_from_db()
    return invoice.status == InvoiceStatus.ISSUED


def test_worker_and_beat_reconnect_after_redis_and_postgres_restart(monkeypatch):
    broker_purge()
    redis_url = urlsplit(settings.REDIS_URL)
    db = connection.settings_dict
    redis_proxy = TcpProxy((redis_url.hostname or "127.0.0.1", redis_url.port or 6379)).start()
    pg_proxy = TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))).start()
    env = worker_env(
        REDIS_URL=f"redis://127.0.0.1:{redis_proxy.port}{redis_url.path}",
        DATABASE_URL=f"postgres://{db['USER'] or 'root'}@127.0.0.1:{pg_proxy.port}/{db['NAME']}",
        INVOICE_FAILURE_RATE="0",
        INVOICE_SWEEP_STALE_S="2",
    )
    worker = WorkerProcess(env, concurrency=2, beat=True).start()
    user, product = UserFactory(), ProductFactory(on_hand=50)
    try:
        first = _paid_order(user, product)
        wait_until(lambda: _issued(first), timeout=60, message=f"before the outage\n{worker.log()[-3000:]}")
        redis_before, pg_before = redis_proxy.accepted, pg_proxy.accepted

        # Both servers "restart" at once: every connection dropped, refused for OUTAGE_S.
        threading.Thread(target=redis_proxy.restart, args=(OUTAGE_S,), daemon=True).start()
        pg_proxy.restart(OUTAGE_S)
        time.sleep(0.5)

        # The worker consumes and writes again: a new paid order is numbered.
        second = _paid_order(user, product)
        wait_until(lambda: _issued(second), timeout=90, message=f"after the restart\n{worker.log()[-3000:]}")
        # Beat publishes again: an invoice whose numbering message never existed is swept.
        order = place_order(user=user, product=product, quantity=1)
        with monkeypatch.context() as patch:
            patch.setattr(assign_invoice_number, "delay", lambda *args, **kwargs: None)
            order_place_paid(order_id=order.pk)
        lost = Invoice.objects.get(order=order)
        wait_until(lambda: _issued(lost), timeout=90, message=f"the sweeper after the restart\n{worker.log()[-3000:]}")
        assert redis_proxy.accepted > redis_before  # new connections were made through the proxies
        assert pg_proxy.accepted > pg_before
    finally:
        worker.kill()
        redis_proxy.stop()
        pg_proxy.stop()
    assert sorted(Invoice.objects.values_list("number", flat=True)) == [1, 2, 3]
