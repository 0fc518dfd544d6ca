import logging
from collections.abc import Callable
from datetime import timedelta

from celery import shared_task
from celery.app.task import Task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from common.backoff import backoff_s as common_backoff_s
from common.errors import NotFound
from invoicing.models import Invoice
from invoicing.services import (
    CREDIT_NOTE_KIND,
    INVOICE_KIND,
    CreditNoteNotIssued,
    InvoiceNotIssued,
    NumberedKind,
    credit_note_pdf_store,
    credit_notes_requeue_stale,
    documents_number_drain,
    invoice_fault_retry_s,
    invoice_pdf_store,
    invoice_reminder_send,
    invoices_mark_overdue,
    invoices_requeue_stale,
    sales_report_send,
)

logger = logging.getLogger(__name__)


def mail_backoff_s(retries: int) -> float:
    """E-mail retries (SMTP down): common.backoff from a minute up to an hour."""
    return common_backoff_s(retries=retries, base_s=60.0, max_s=3600.0)


def backoff_s(retries: int) -> float:
    """The numbering retry's delay: common.backoff with INVOICE_RETRY_BASE_S / _MAX_S."""
    return common_backoff_s(retries=retries, base_s=settings.INVOICE_RETRY_BASE_S, max_s=settings.INVOICE_RETRY_MAX_S)


def _number_or_retry(task: Task, *, kind: NumberedKind, document_id: int) -> int:
    """The trigger of group-commit numbering, for either kind: number every due document of
    the kind, this one included, batch after batch while there is a backlog
    (documents_number_drain). Still pending afterwards (the simulated fault failed it, or
    another worker's batch holds it): retry when its row says it is due. Database trouble:
    exponential backoff up to INVOICE_RETRY_MAX_S. Returns how many documents it numbered.

    Under load most triggers find their document already numbered by an earlier batch: one
    primary-key read answers them, with no batch, no transaction and no lock; they return 0,
    and their log lines go to DEBUG (common.logs.QuietPeriodicFilter)."""
    try:
        status = kind.model.objects.filter(pk=document_id).values_list("status", flat=True).first()
        if status is None:
            logger.error("%s %s does not exist; not retrying", kind.label, document_id)
            return 0
        if status != "pending":
            return 0  # numbered (or void): nothing to do
        issued = len(documents_number_drain(kind=kind, include_id=document_id).issued)
    except (OperationalError, InterfaceError) as exc:
        countdown = backoff_s(task.request.retries)
        logger.warning("%s %s: database unavailable (%s); retrying in %.2fs", kind.label, document_id, exc, countdown)
        raise task.retry(exc=exc, countdown=countdown) from exc
    row = kind.model.objects.filter(pk=document_id).values("status", "next_attempt_at", "last_error").first()
    if row is None:
        logger.error("%s %s does not exist; not retrying", kind.label, document_id)
        return issued
    if row["status"] != "pending":
        return issued
    due = row["next_attempt_at"]
    if due is not None:
        countdown = max((due - timezone.now()).total_seconds(), 0.01)
    elif kind.due:
        # Not attempted: its precondition does not hold yet (a credit note's invoice has no
        # number). Short and capped, growing with the retries: no 20 Hz spin while it waits.
        countdown = invoice_fault_retry_s(attempts=task.request.retries + 1)
    else:
        countdown = settings.INVOICE_FAULT_RETRY_BASE_S  # another batch holds it (SKIP LOCKED)
    logger.info(
        "%s %s attempt %s failed (%s); retrying in %.2fs", kind.label, document_id, task.request.retries,
        row["last_error"], countdown,
    )  # fmt: skip
    raise task.retry(countdown=countdown)


@shared_task(
    bind=True,
    name="invoicing.assign_invoice_number",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    ignore_result=True,
)
def assign_invoice_number(self: Task, invoice_id: int) -> int:
    """Number due invoices, this one included; retries forever (_number_or_retry)."""
    return _number_or_retry(self, kind=INVOICE_KIND, document_id=invoice_id)


@shared_task(
    bind=True,
    name="invoicing.assign_credit_note_number",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    ignore_result=True,
)
def assign_credit_note_number(self: Task, credit_note_id: int) -> int:
    """Number due credit notes (series CN), this one included; retries forever, like invoices."""
    return _number_or_retry(self, kind=CREDIT_NOTE_KIND, document_id=credit_note_id)


@shared_task(name="invoicing.sweep_pending", ignore_result=True)
def sweep_pending() -> int:
    """Beat: re-enqueue pending invoices and credit notes whose retry chain was lost."""
    return len(invoices_requeue_stale()) + len(credit_notes_requeue_stale())


@shared_task(bind=True, name="invoicing.render_invoice_pdf", acks_late=True, max_retries=8, ignore_result=True)
def render_invoice_pdf(self: Task, invoice_id: int) -> None:
    """Render and store an issued invoice's PDF (documents queue). Idempotent: a fresh
    stored PDF is kept. A pending or missing invoice is nothing to do."""
    try:
        invoice_pdf_store(invoice_id=invoice_id)
    except (Invoice.DoesNotExist, InvoiceNotIssued) as exc:
        logger.info("no PDF for invoice %s: %s", invoice_id, exc)
    except (OperationalError, InterfaceError) as exc:
        raise self.retry(exc=exc, countdown=backoff_s(self.request.retries)) from exc


def _render_many(task: Task, *, ids: list[int], render: Callable[[int], object], label: str) -> None:
    """Render each id's PDF; on database trouble retry the ones not done yet (done ones are
    stored, and a re-render of a fresh stored PDF is a no-op anyway)."""
    for position, document_id in enumerate(ids):
        try:
            render(document_id)
        except (NotFound, InvoiceNotIssued, CreditNoteNotIssued, Invoice.DoesNotExist) as exc:
            logger.info("no PDF for %s %s: %s", label, document_id, exc)
        except (OperationalError, InterfaceError) as exc:
            rest = ids[position:]
            raise task.retry(exc=exc, countdown=backoff_s(task.request.retries), args=(rest,)) from exc


@shared_task(bind=True, name="invoicing.render_invoice_pdfs", acks_late=True, max_retries=8, ignore_result=True)
def render_invoice_pdfs(self: Task, invoice_ids: list[int]) -> None:
    """The PDFs of one numbering batch (documents queue): one message for the whole batch."""
    _render_many(self, ids=invoice_ids, render=lambda pk: invoice_pdf_store(invoice_id=pk), label="invoice")


@shared_task(bind=True, name="invoicing.render_credit_note_pdfs", acks_late=True, max_retries=8, ignore_result=True)
def render_credit_note_pdfs(self: Task, credit_note_ids: list[int]) -> None:
    """The PDFs of one numbering batch of credit notes (documents queue)."""
    _render_many(
        self, ids=credit_note_ids, render=lambda pk: credit_note_pdf_store(credit_note_id=pk), label="credit note"
    )


@shared_task(bind=True, name="invoicing.render_credit_note_pdf", acks_late=True, max_retries=8, ignore_result=True)
def render_credit_note_pdf(self: Task, credit_note_id: int) -> None:
    """Render and store an issued credit note's PDF (documents queue), like invoices'."""
    try:
        credit_note_pdf_store(credit_note_id=credit_note_id)
    except (NotFound, CreditNoteNotIssued) as exc:
        logger.info("no PDF for credit note %s: %s", credit_note_id, exc)
    except (OperationalError, InterfaceError) as exc:
        raise self.retry(exc=exc, countdown=backoff_s(self.request.retries)) from exc


@shared_task(name="invoicing.mark_overdue", acks_late=True, ignore_result=True)
def mark_overdue() -> int:
    """Beat, daily: flag issued invoices past due and unpaid; each gets one reminder."""
    return len(invoices_mark_overdue())


@shared_task(bind=True, name="invoicing.send_overdue_reminder", acks_late=True, max_retries=10, ignore_result=True)
def send_overdue_reminder(self: Task, invoice_id: int) -> bool:
    """E-mail an overdue invoice's one reminder; a failed send is retried with backoff."""
    try:
        return invoice_reminder_send(invoice_id=invoice_id)
    except (OSError, OperationalError, InterfaceError) as exc:  # SMTP down, DB blip
        raise self.retry(exc=exc, countdown=mail_backoff_s(self.request.retries)) from exc


@shared_task(bind=True, name="invoicing.send_daily_sales_report", acks_late=True, max_retries=10, ignore_result=True)
def send_daily_sales_report(self: Task, day: str | None = None) -> str:
    """Beat, daily at SALES_REPORT_HOUR: yesterday's (UTC) report to STAFF_EMAILS, once."""
    from datetime import date

    report_day = date.fromisoformat(day) if day else timezone.now().date() - timedelta(days=1)
    try:
        report = sales_report_send(day=report_day)
    except (OSError, OperationalError, InterfaceError) as exc:
        raise self.retry(exc=exc, countdown=mail_backoff_s(self.request.retries), args=(report_day.isoformat(),))
    return report.date.isoformat()
