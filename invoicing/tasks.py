import logging
import random

from celery import shared_task
from celery.app.task import Task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from invoicing.models import Invoice
from invoicing.services import InvoiceAttemptFailed, invoice_assign_number, invoices_requeue_stale

logger = logging.getLogger(__name__)


def backoff_s(retries: int) -> float:
    """Exponential backoff with a cap and "equal jitter": half fixed, half random, so
    retries of many invoices spread out instead of arriving together."""
    ceiling = min(settings.INVOICE_RETRY_MAX_S, settings.INVOICE_RETRY_BASE_S * (2 ** min(retries, 32)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@shared_task(
    bind=True,
    name="invoicing.assign_invoice_number",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    ignore_result=True,
)
def assign_invoice_number(self: Task, invoice_id: int) -> None:
    """Number one invoice; retry forever on the simulated fault and transient DB errors."""
    try:
        invoice_assign_number(invoice_id=invoice_id)
    except Invoice.DoesNotExist:
        logger.error("invoice %s does not exist; not retrying", invoice_id)
    except (InvoiceAttemptFailed, OperationalError, InterfaceError) as exc:
        countdown = backoff_s(self.request.retries)
        logger.info(
            "invoice %s attempt %s failed (%s); retrying in %.2fs", invoice_id, self.request.retries, exc, countdown
        )
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(name="invoicing.sweep_pending", ignore_result=True)
def sweep_pending() -> int:
    """Beat: re-enqueue pending invoices whose retry chain was lost."""
    return len(invoices_requeue_stale())
