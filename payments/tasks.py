import logging
import random
from datetime import datetime

from celery import shared_task
from celery.app.task import Task
from django.conf import settings

from payments.models import PaymentAttempt
from payments.providers.simulated import WebhookDeliveryFailed, simulated_deliver_step
from payments.services import payment_attempts_fail_stale

logger = logging.getLogger(__name__)


def delivery_backoff_s(retries: int) -> float:
    """Exponential backoff with a cap and equal jitter, like the invoice retries."""
    ceiling = min(settings.PAYMENT_WEBHOOK_RETRY_MAX_S, settings.PAYMENT_WEBHOOK_RETRY_BASE_S * (2 ** min(retries, 32)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@shared_task(
    bind=True,
    name="payments.simulated_deliver",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    ignore_result=True,
)
def simulated_deliver(self: Task, attempt_id: int, script: str, step: int, started_at: str) -> None:
    """The simulated provider: deliver one webhook of an attempt's script, then schedule the
    next step. A failed delivery is retried with backoff up to PAYMENT_WEBHOOK_MAX_RETRIES.
    Running a step twice re-sends the same webhook-id, which the shop dedupes."""
    try:
        next_delay_s = simulated_deliver_step(
            attempt_id=attempt_id, script=script, step=step, started_at=datetime.fromisoformat(started_at)
        )
    except PaymentAttempt.DoesNotExist:
        logger.error("simulated provider: attempt %s does not exist; nothing to deliver", attempt_id)
        return
    except WebhookDeliveryFailed as exc:
        if self.request.retries >= settings.PAYMENT_WEBHOOK_MAX_RETRIES:
            logger.error("simulated provider: giving up on attempt %s step %s: %s", attempt_id, step, exc)
            return
        countdown = delivery_backoff_s(self.request.retries)
        logger.warning(
            "webhook delivery for attempt %s step %s failed (%s); retry in %.1fs", attempt_id, step, exc, countdown
        )
        raise self.retry(exc=exc, countdown=countdown) from exc
    if next_delay_s is not None:
        simulated_deliver.apply_async(
            kwargs={"attempt_id": attempt_id, "script": script, "step": step + 1, "started_at": started_at},
            countdown=next_delay_s,
        )


@shared_task(name="payments.fail_stale_attempts", ignore_result=True)
def fail_stale_attempts() -> int:
    """Beat: fail attempts the provider never answered (PAYMENT_PROCESSING_TIMEOUT_S)."""
    return payment_attempts_fail_stale()
