import logging
from typing import Any

from celery import shared_task
from celery.app.task import Task
from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError

from common.backoff import backoff_s
from notifications.services import customer_email_send, customer_emails_dispatch

logger = logging.getLogger(__name__)

_KICK_KEY = "notifications:dispatch-kicked"


@shared_task(name="notifications.dispatch", acks_late=True, ignore_result=True)
def dispatch() -> int:
    """Beat (every 5 s) and after each relay that published: rows for new outbox events,
    then the send of every due row (documents queue)."""
    return customer_emails_dispatch()


@shared_task(bind=True, name="notifications.send_email", acks_late=True, max_retries=5, ignore_result=True)
def send_email(self: Task, email_id: int) -> str:
    """Send one CustomerEmail once (a duplicate message finds it sent). SMTP failures are
    recorded on the row and retried by the dispatcher when due; database trouble retries
    this task with common.backoff (and the lease re-kicks it anyway)."""
    try:
        return customer_email_send(email_id=email_id)
    except (OperationalError, InterfaceError) as exc:
        countdown = backoff_s(retries=self.request.retries, base_s=1.0, max_s=settings.EMAIL_KICK_LEASE_S)
        raise self.retry(exc=exc, countdown=countdown) from exc


def after_relay(sender: Any = None, result: Any = None, **kwargs: Any) -> None:
    """celery task_success receiver: a relay that published events kicks the dispatcher
    (at most once a second). Never raises: beat runs the dispatcher every 5 s anyway."""
    if getattr(sender, "name", None) != "outbox.relay" or not result:
        return
    try:
        if cache.add(_KICK_KEY, 1, timeout=1):
            dispatch.delay()
    except Exception:
        logger.warning("could not kick the customer e-mail dispatcher; beat will run it", exc_info=True)
