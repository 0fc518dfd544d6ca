"""The numbering task and the sweeper, as Celery runs them (eagerly, in-process)."""

import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings

from common.tests.helpers import broker_purge, place_order, queued_tasks
from flows.order_paid import order_place_paid
from invoicing import services
from invoicing.models import Invoice
from invoicing.services import FaultInjector, invoice_assign_number
from invoicing.tasks import assign_invoice_number, backoff_s, sweep_pending

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TASK = "invoicing.assign_invoice_number"


class ScriptedRandom:
    """A random source that returns the given draws in order (the fault's injectable rng)."""

    def __init__(self, draws: list[float]) -> None:
        self.draws = list(draws)

    def random(self) -> float:
        return self.draws.pop(0)


def _paid_invoice(django_capture_on_commit_callbacks) -> Invoice:
    order = place_order()
    with django_capture_on_commit_callbacks(execute=False):
        order_place_paid(order_id=order.pk)
    return Invoice.objects.get(order=order)


@pytest.fixture
def fast_backoff(settings):
    settings.INVOICE_RETRY_BASE_S = 0.2
    settings.INVOICE_RETRY_MAX_S = 1.0


def test_the_task_is_configured_to_survive_crashes_and_retry_forever():
    assert assign_invoice_number.name == TASK
    assert assign_invoice_number.acks_late is True
    assert assign_invoice_number.reject_on_worker_lost is True
    assert assign_invoice_number.max_retries is None


@pytest.mark.usefixtures("fast_backoff")
def test_backoff_grows_exponentially_is_capped_and_jittered_within_bounds():
    ceilings = [0.2, 0.4, 0.8, 1.0, 1.0, 1.0]

    for retries, ceiling in enumerate(ceilings):
        samples = [backoff_s(retries) for _ in range(300)]
        assert all(ceiling / 2 <= s <= ceiling for s in samples), (retries, min(samples), max(samples))
        assert len(set(samples)) > 1  # really jittered
    huge = [backoff_s(10_000) for _ in range(50)]
    assert all(0.5 <= s <= 1.0 for s in huge)  # no overflow, still capped


def test_default_backoff_cap_stays_far_below_the_brokers_visibility_timeout():
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] >= 10 * settings.INVOICE_RETRY_MAX_S


@pytest.mark.usefixtures("fast_backoff")
def test_task_retries_the_fault_with_growing_backoff_until_it_succeeds(
    django_capture_on_commit_callbacks, monkeypatch, caplog, settings
):
    # The fault's own backoff (short and capped), kept in the invoice row between retries.
    settings.INVOICE_FAULT_RETRY_BASE_S = 0.2
    settings.INVOICE_FAULT_RETRY_MAX_S = 1.0
    invoice = _paid_invoice(django_capture_on_commit_callbacks)
    # Four draws under the rate (fail), then one above it (succeed).
    fault = FaultInjector(rate=0.5, rng=ScriptedRandom([0.1, 0.1, 0.1, 0.1, 0.9]))  # type: ignore[arg-type]
    monkeypatch.setattr(services, "fault_from_settings", lambda: fault)

    with caplog.at_level(logging.INFO, logger="invoicing.tasks"):
        result = assign_invoice_number.apply(args=[invoice.pk])

    assert result.successful()
    invoice.refresh_from_db()
    assert (invoice.status, invoice.number, invoice.attempts, invoice.last_error) == ("issued", 1, 5, "")
    retries = [
        (int(m[1]), float(m[2]))
        for r in caplog.records
        if (m := re.search(r"attempt (\d+) failed .* retrying in ([\d.]+)s", r.getMessage()))
    ]
    assert [attempt for attempt, _ in retries] == [0, 1, 2, 3]
    for (attempt, countdown), ceiling in zip(retries, [0.2, 0.4, 0.8, 1.0], strict=True):
        assert ceiling / 2 - 0.01 <= countdown <= ceiling + 0.01, (attempt, countdown)


def test_task_stops_on_a_deleted_invoice_without_retrying(caplog):
    with caplog.at_level(logging.INFO, logger="invoicing.tasks"):
        result = assign_invoice_number.apply(args=[987_654])

    assert result.successful()
    messages = [r.getMessage() for r in caplog.records]
    assert "invoice 987654 does not exist; not retrying" in messages
    assert not any("retrying in" in m for m in messages)


def test_task_on_an_issued_invoice_is_a_no_op(django_capture_on_commit_callbacks):
    invoice = _paid_invoice(django_capture_on_commit_callbacks)
    invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=0))

    result = assign_invoice_number.apply(args=[invoice.pk])

    assert result.successful()
    invoice.refresh_from_db()
    assert (invoice.number, invoice.attempts) == (1, 1)


# --- The sweeper -------------------------------------------------------------------------------


def test_the_sweeper_runs_every_ten_seconds():
    entries = {e["task"]: e["schedule"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
    assert entries[sweep_pending.name] == 10.0


def test_sweeper_re_enqueues_only_invoices_stale_for_longer_than_the_threshold(
    settings, django_capture_on_commit_callbacks
):
    settings.INVOICE_SWEEP_STALE_S = 60
    broker_purge()
    with time_machine.travel(T0, tick=False):
        stale = _paid_invoice(django_capture_on_commit_callbacks)
        issued = _paid_invoice(django_capture_on_commit_callbacks)
        invoice_assign_number(invoice_id=issued.pk, fault=FaultInjector(rate=0))
    with time_machine.travel(T0 + timedelta(seconds=50), tick=False):
        retrying = _paid_invoice(django_capture_on_commit_callbacks)
        with pytest.raises(services.InvoiceAttemptFailed):
            invoice_assign_number(invoice_id=retrying.pk, fault=FaultInjector(rate=1))

    with time_machine.travel(T0 + timedelta(seconds=59), tick=False):
        too_early = sweep_pending.apply().get()
    with time_machine.travel(T0 + timedelta(seconds=61), tick=False):
        swept = sweep_pending.apply().get()
        swept_again_at_once = sweep_pending.apply().get()

    assert (too_early, swept, swept_again_at_once) == (0, 1, 0)
    assert queued_tasks(name=TASK) == [(TASK, [stale.pk])]
    stale.refresh_from_db()
    assert stale.enqueued_at == T0 + timedelta(seconds=61)
    broker_purge()
