"""Chaos over the production-shaped stack (`make chaos`): the issue's outside check, run here.

The stack of `make bench` (docker-compose.yml's commands: nginx, gunicorn for web, webhooks
and polls, the worker, documents and provider Celery workers, beat; bench/flow.py) on its own
database and Redis db. Signed-in shoppers buy over HTTP (cart, checkout, pay with
`pm_card_success`, Idempotency-Keys) until --orders orders are accepted, at invoice failure
rate 0.5, while:

- every --kill-every seconds one of worker, documents, provider and beat is SIGKILLed (its
  whole process group: no warm shutdown, nothing acknowledged) and started again, as
  compose's `restart: unless-stopped` does;
- the broker's Redis db is emptied (FLUSHDB: every queued message and every lock gone) at
  a quarter and three quarters of the orders;
- every PostgreSQL connection to the database is terminated at 40 % and 90 %;
- with --pg-restart "COMMAND" PostgreSQL itself is restarted at 60 % (for example
  `pg_ctlcluster 15 main restart -m fast`; nothing is restarted without it).

Then the faults stop and it waits (up to --settle seconds) for every accepted order to be
paid once and its invoice numbered, and checks the series: numbers exactly 1..N. Exit status
0 when all of that holds, 1 otherwise. The sweepers run on beat's real schedule with the
settings' leases and staleness (environment variables override them, as in production).

    .venv/bin/python bench/chaos.py [--orders 1000] [--shoppers 8] [--kill-every 2]
"""

import argparse
import random
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import flow
from run import DATABASE_URL, REDIS_URL, bench_env, broker_flush, database_recreate, django_setup, log

VICTIMS = ("worker", "worker", "documents", "provider", "beat")  # numbering's worker twice as often
FLUSH_AT = (0.25, 0.75)
TERMINATE_AT = (0.4, 0.9)
RESTART_AT = 0.6


@dataclass
class Faults:
    kills: int = 0
    flushes: int = 0
    terminations: int = 0
    restarts: int = 0
    moments: list[str] = field(default_factory=list)

    def note(self, started: float, what: str) -> None:
        self.moments.append(f"{time.time() - started:.1f} s {what}")
        log(f"chaos: {what}")


def connections_terminate() -> int:
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


def faults_run(
    *,
    stack: flow.Stack,
    progress: Callable[[], float],
    busy: Callable[[], bool],
    kill_every: float,
    pg_restart: str,
    seed: int,
) -> Faults:
    """Inject the faults while `busy()`; `progress()` is the share of the orders accepted."""
    rng = random.Random(seed)
    faults = Faults()
    started = time.time()
    pending = {"flush": list(FLUSH_AT), "terminate": list(TERMINATE_AT), "restart": [RESTART_AT] if pg_restart else []}
    while True:  # one more round after the last order: every fault below happens in every run
        finished = not busy()
        time.sleep(kill_every)
        victim = rng.choice(VICTIMS)
        stack.kill_and_restart(victim)
        faults.kills += 1
        done = 1.0 if finished else progress()
        while pending["flush"] and done >= pending["flush"][0]:
            pending["flush"].pop(0)
            redis.Redis.from_url(REDIS_URL).flushdb()
            faults.flushes += 1
            faults.note(started, "the broker's Redis db emptied (FLUSHDB)")
        while pending["terminate"] and done >= pending["terminate"][0]:
            pending["terminate"].pop(0)
            count = connections_terminate()
            faults.terminations += 1
            faults.note(started, f"{count} PostgreSQL connections terminated")
        if pending["restart"] and done >= pending["restart"][0]:
            pending["restart"].pop(0)
            began = time.time()
            subprocess.run(shlex.split(pg_restart), check=True)
            faults.restarts += 1
            faults.note(started, f"PostgreSQL restarted ({time.time() - began:.1f} s)")
        if finished:
            break
    return faults


def outcome_wait(*, order_ids: list[int], settle: float) -> tuple[float | None, int, int]:
    """Seconds until every order is paid and its invoice issued (None: not within `settle`),
    with the counts at the end."""
    from django.db import connections

    from invoicing.models import Invoice, InvoiceStatus
    from orders.models import Order, OrderStatus

    started = time.time()
    last: tuple[int, int] | None = None
    while True:
        try:
            paid = Order.objects.filter(pk__in=order_ids, status=OrderStatus.PAID).count()
            issued = Invoice.objects.filter(order_id__in=order_ids, status=InvoiceStatus.ISSUED).count()
        except Exception as exc:  # PostgreSQL may still be coming back
            log(f"chaos: waiting for PostgreSQL ({type(exc).__name__})")
            connections.close_all()
            paid, issued = last or (0, 0)
        if (paid, issued) != last:
            log(f"chaos: +{time.time() - started:.1f} s: paid {paid}/{len(order_ids)}, numbered {issued}")
            last = (paid, issued)
        if paid == issued == len(order_ids):
            return time.time() - started, paid, issued
        if time.time() - started > settle:
            return None, paid, issued
        time.sleep(0.5)


def paid_more_than_once(*, order_ids: list[int]) -> int:
    from django.db.models import Count

    from payments.models import PaymentAttempt, PaymentStatus

    return (
        PaymentAttempt.objects.filter(order_id__in=order_ids, status=PaymentStatus.SUCCEEDED)
        .values("order_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1000, help="orders accepted over HTTP before the faults stop")
    parser.add_argument("--shoppers", type=int, default=8, help="signed-in shoppers buying at once")
    parser.add_argument("--kill-every", type=float, default=2.0, help="seconds between two SIGKILLs")
    parser.add_argument("--pg-restart", default="", help="command restarting PostgreSQL at 60 %% of the orders")
    parser.add_argument("--settle", type=float, default=300.0, help="seconds allowed after the faults")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    log(f"chaos: database {DATABASE_URL} (re-created), broker {REDIS_URL} (flushed)")
    database_recreate()
    broker_flush()
    django_setup()
    skus = flow.fixtures_create(shoppers=args.shoppers)
    from django.db import connections

    connections.close_all()
    log_dir = Path(tempfile.mkdtemp(prefix="commerce-chaos-"))
    stack = flow.Stack(env={**bench_env(), "INVOICE_FAILURE_RATE": "0.5"}, log_dir=log_dir)
    try:
        stack.start()
        log(f"chaos: {args.shoppers} shoppers sign in at {stack.base}; logs {log_dir}")
        shoppers = [flow.Shopper(base=stack.base, index=i).sign_in() for i in range(args.shoppers)]
        step = flow.Step(concurrency=args.shoppers, window_s=0)
        halt = threading.Event()
        threads = [
            threading.Thread(
                target=flow.shopper_loop,
                kwargs={
                    "shopper": s,
                    "skus": skus,
                    "step": step,
                    "halt": halt,
                    "on_paid": lambda record, shopper: None,
                    "max_orders": args.orders,
                },
                daemon=True,
            )
            for s in shoppers
        ]
        started = time.time()
        for thread in threads:
            thread.start()
        faults = faults_run(
            stack=stack,
            progress=lambda: len(step.orders) / args.orders,
            busy=lambda: any(t.is_alive() for t in threads),
            kill_every=args.kill_every,
            pg_restart=args.pg_restart,
            seed=args.seed,
        )
        load_s = time.time() - started
        order_ids = [record.order_id for record in step.orders]
        errors = ", ".join(f"{what} x{n}" for what, n in sorted(step.errors.items())) or "none"
        log(f"chaos: faults stopped; {len(order_ids)} orders accepted in {load_s:.0f} s (refused: {errors})")
        settled, paid, issued = outcome_wait(order_ids=order_ids, settle=args.settle)
        connections.close_all()
        from invoicing.selectors import invoice_gap_audit

        audit = [row for row in invoice_gap_audit() if row["series"] == "INV"]
        twice = paid_more_than_once(order_ids=order_ids)
    finally:
        stack.stop()
    complete = bool(audit) and all(row["complete"] for row in audit)
    print(
        f"chaos: {len(order_ids)} orders accepted over HTTP in {load_s:.0f} s; {faults.kills} SIGKILLs, "
        f"{faults.flushes} broker flushes, {faults.terminations} connection terminations, "
        f"{faults.restarts} PostgreSQL restarts ({'; '.join(faults.moments) or 'no other fault'})"
    )
    if settled is None:
        print(f"chaos: NOT SETTLED after {args.settle:.0f} s: paid {paid}, numbered {issued} of {len(order_ids)}")
    else:
        print(f"chaos: every accepted order paid and numbered {settled:.1f} s after the faults stopped")
    print(f"chaos: orders paid more than once: {twice}")
    for row in audit:
        print(
            f"chaos: series {row['series']}: {row['count']} numbers, max {row['max']}, "
            f"missing {row['missing_count']}, duplicated {len(row['duplicates'])}: "
            f"{'1..N complete' if row['complete'] else 'NOT 1..N'}"
        )
    return 0 if settled is not None and twice == 0 and complete and issued == len(order_ids) else 1


if __name__ == "__main__":
    sys.exit(main())
