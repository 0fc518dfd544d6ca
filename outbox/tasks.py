from celery import shared_task

from outbox.services import outbox_relay


@shared_task(name="outbox.relay", acks_late=True, ignore_result=True)
def relay() -> int:
    return outbox_relay()
