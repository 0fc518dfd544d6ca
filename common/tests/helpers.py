"""Shared test helpers: placing orders quickly, and a real Celery worker process."""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, connections

from common.tests.factories import ProductFactory, UserFactory
from orders.models import Order
from orders.services import cart_add_item, cart_get_or_create, checkout_place_order

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = {"name": "Ada Shopper", "line1": "1 Test Street", "city": "Paris", "postal_code": "75001", "country": "FR"}


def place_order(*, user: Any = None, product: Any = None, quantity: int = 1) -> Order:
    """A pending_payment order through the real cart and checkout services."""
    user = user or UserFactory()
    product = product or ProductFactory(on_hand=quantity + 10)
    cart = cart_get_or_create(user=user)
    cart_add_item(cart=cart, sku=product.sku, quantity=quantity)
    return checkout_place_order(cart=cart, user=user, shipping_address=ADDRESS)


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.2, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for: {message or predicate}")


def run_in_threads(target: Callable[[int], Any], count: int, *, timeout: float = 120) -> list[Any]:
    """Run `target(i)` for i in 0..count-1 in real threads, released together by a barrier.

    Each thread has its own database connection and closes it at the end. Returns, by
    index, what each call returned or the exception it raised (never swallowed silently:
    the caller asserts on the outcomes).
    """
    barrier = threading.Barrier(count)
    outcomes: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=timeout)
            outcomes[i] = target(i)
        except BaseException as exc:
            outcomes[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,), name=f"race-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"threads still running after {timeout}s: {stuck}"
    return outcomes


def broker_queue() -> Any:
    """The Redis client of this test run's broker (its own Redis database)."""
    import redis

    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def queued_tasks(*, name: str | None = None, queue: str = "celery") -> list[tuple[str, list[Any]]]:
    """(task name, args) of the messages waiting in a Celery queue on the Redis broker,
    oldest first: what was really enqueued, without mocking Celery."""
    import base64
    import json

    found = []
    for raw in reversed(broker_queue().lrange(queue, 0, -1)):  # LPUSHed: newest first
        message = json.loads(raw)
        task = message["headers"]["task"]
        args = json.loads(base64.b64decode(message["body"]))[0]
        if name is None or task == name:
            found.append((task, args))
    return found


def broker_purge(queue: str = "celery") -> None:
    broker_queue().delete(queue)


def worker_env(**overrides: str) -> dict[str, str]:
    """Environment for a worker process that shares this test run's database and broker."""
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": "postgres://{}@{}:{}/{}".format(
                db["USER"] or "root", db["HOST"] or "127.0.0.1", db["PORT"] or 5432, db["NAME"]
            ),
            "REDIS_URL": settings.REDIS_URL,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


class WorkerProcess:
    """A real `celery worker` subprocess (its own process group, so SIGKILL takes all)."""

    def __init__(
        self,
        env: dict[str, str],
        concurrency: int = 4,
        log_path: Path | None = None,
        beat: bool = False,
        queues: str = "celery,documents,provider",
    ) -> None:
        """`beat=True` embeds Celery beat (`-B`) with the settings' beat_schedule and a fresh
        schedule file, so periodic tasks (the invoice sweeper) run as in production."""
        self.env = env
        self.concurrency = concurrency
        self.beat = beat
        self.queues = queues  # by default one test worker serves every queue
        self.log_path = log_path or ROOT / "test-artifacts" / f"worker-{uuid.uuid4().hex[:8]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "WorkerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", self.queues, "--loglevel=INFO"]
        command += [f"--concurrency={self.concurrency}", "--pool=prefork", "--prefetch-multiplier=1", "-Ofair"]
        command += ["--without-gossip", "--without-mingle", "--hostname", f"test-{uuid.uuid4().hex[:6]}@%h"]
        if self.beat:
            schedule = self.log_path.with_suffix(".beat-schedule")
            command += ["-B", "--schedule", str(schedule)]
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the whole worker (parent and pool children): no cleanup, no acks."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM: Celery's warm shutdown."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
