"""The credit note numbering task and the sweeper's share of it, as Celery runs them
(eagerly, in-process): configured like the invoice task, retrying the fault with the same
short capped backoff until it succeeds, and re-enqueued by the sweeper when stale."""

import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from common.tests.helpers import broker_purge, queued_tasks
from invoicing import services
from invoicing.models import CreditNote
from invoicing.services import FaultInjector, invoices_number_due
from invoicing.tasks import assign_credit_note_number, sweep_pending
from invoicing.tests.helpers import paid_order, refund_succeeded

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TASK = "invoicing.assign_credit_note_number"


class ScriptedRandom:
    def __init__(self, draws: list[float]) -> None:
        self.draws = list(draws)

    def random(self) -> float:
        return self.draws.pop(0)


@pytest.fixture
def quiet(monkeypatch):
    for hook in (
        "invoice_enqueue_pdf",
        "invoice_enqueue_pdfs",
        "credit_note_enqueue_pdf",
        "credit_note_enqueue_pdfs",
        "invoice_enqueue_numbering",
    ):
        monkeypatch.setattr(f"invoicing.services.{hook}", lambda **kwargs: None)
    monkeypatch.setattr("invoicing.services.credit_note_enqueue_numbering", lambda **kwargs: None)


def _pending_note() -> CreditNote:
    note = refund_succeeded(order=paid_order(), amount="2.00")
    invoices_number_due(fault=FaultInjector(rate=0))
    return note


def test_the_task_is_configured_like_the_invoice_task_to_survive_crashes_and_retry_forever():
    assert assign_credit_note_number.name == TASK
    assert assign_credit_note_number.acks_late is True
    assert assign_credit_note_number.reject_on_worker_lost is True
    assert assign_credit_note_number.max_retries is None


def test_the_task_retries_the_fault_with_the_short_capped_backoff_until_it_succeeds(
    quiet, monkeypatch, caplog, settings
):
    settings.INVOICE_FAULT_RETRY_BASE_S = 0.2
    settings.INVOICE_FAULT_RETRY_MAX_S = 1.0
    note = _pending_note()
    fault = FaultInjector(rate=0.5, rng=ScriptedRandom([0.1, 0.1, 0.1, 0.9]))  # type: ignore[arg-type]
    monkeypatch.setattr(services, "fault_from_settings", lambda: fault)

    with caplog.at_level(logging.INFO, logger="invoicing.tasks"):
        result = assign_credit_note_number.apply(args=[note.pk])

    assert result.successful()
    note.refresh_from_db()
    assert (note.status, note.number_display, note.attempts, note.last_error) == ("issued", "CN-1", 4, "")
    retries = [
        (int(m[1]), float(m[2]))
        for r in caplog.records
        if (m := re.search(r"credit note \d+ attempt (\d+) failed .* retrying in ([\d.]+)s", r.getMessage()))
    ]
    assert [attempt for attempt, _ in retries] == [0, 1, 2]
    # Within the capped, jittered ceiling of each retry (the row's retry time minus the time
    # spent since: no lower bound on a loaded machine).
    for (attempt, countdown), ceiling in zip(retries, [0.2, 0.4, 0.8], strict=True):
        assert 0 < countdown <= ceiling + 0.01, (attempt, countdown)
    assert sum(countdown for _, countdown in retries) > 0.35  # growing: at least 0.1 + 0.2 + 0.4 before lag
    stored = CreditNote.objects.get(pk=note.pk)
    assert stored.next_attempt_at is None  # issued: no retry time left


def test_the_task_stops_on_a_missing_credit_note_without_retrying(caplog):
    with caplog.at_level(logging.INFO, logger="invoicing.tasks"):
        result = assign_credit_note_number.apply(args=[987_654])

    assert result.successful()
    assert "credit note 987654 does not exist; not retrying" in [r.getMessage() for r in caplog.records]


def test_the_sweeper_re_enqueues_stale_pending_credit_notes(quiet, settings):
    settings.INVOICE_SWEEP_STALE_S = 60
    broker_purge()
    try:
        with time_machine.travel(T0, tick=False):
            stale = _pending_note()
        with time_machine.travel(T0 + timedelta(seconds=59), tick=False):
            too_early = sweep_pending.apply().get()
        with time_machine.travel(T0 + timedelta(seconds=61), tick=False):
            swept = sweep_pending.apply().get()
            swept_again_at_once = sweep_pending.apply().get()

        assert (too_early, swept, swept_again_at_once) == (0, 1, 0)
        assert queued_tasks(name=TASK) == [(TASK, [stale.pk])]
        stale.refresh_from_db()
        assert stale.enqueued_at == T0 + timedelta(seconds=61)
    finally:
        broker_purge()


def test_while_its_invoice_has_no_number_the_task_waits_with_a_growing_capped_backoff(quiet, caplog, settings):
    settings.INVOICE_FAULT_RETRY_BASE_S = 0.2
    settings.INVOICE_FAULT_RETRY_MAX_S = 1.0
    note = refund_succeeded(order=paid_order(), amount="2.00")  # its invoice is still pending
    retried = []

    def fake_retry(*, countdown, **kwargs):
        retried.append(countdown)
        raise RuntimeError("stop")  # instead of Celery's Retry: one round is enough

    from invoicing.services import CREDIT_NOTE_KIND
    from invoicing.tasks import _number_or_retry

    class Task:
        class request:
            retries = 5

        retry = staticmethod(fake_retry)

    with pytest.raises(RuntimeError):
        _number_or_retry(Task, kind=CREDIT_NOTE_KIND, document_id=note.pk)  # type: ignore[arg-type]

    note.refresh_from_db()
    assert (note.status, note.attempts) == ("pending", 0)  # not attempted: nothing to give back
    assert 0.5 <= retried[0] <= 1.0  # capped at INVOICE_FAULT_RETRY_MAX_S, not 20 Hz


def test_the_metrics_show_pending_credit_notes_and_the_oldest_ones_age(quiet):
    from invoicing.metrics import InvoicingCollector

    def gauges() -> dict[str, float]:
        return {metric.name: metric.samples[0].value for metric in InvoicingCollector().collect()}

    assert (gauges()["credit_notes_pending"], gauges()["credit_note_oldest_pending_age_seconds"]) == (0, 0.0)
    with time_machine.travel(T0, tick=False):
        note = _pending_note()
    with time_machine.travel(T0 + timedelta(seconds=42), tick=False):
        waiting = gauges()
    assert (waiting["credit_notes_pending"], waiting["credit_note_oldest_pending_age_seconds"]) == (1, 42.0)
    services.credit_notes_number_due(include_id=note.pk, fault=FaultInjector(rate=0))
    assert gauges()["credit_notes_pending"] == 0
