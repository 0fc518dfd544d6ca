from celery import shared_task

from orders.services import orders_expire_unpaid


@shared_task(name="orders.expire_reservations", acks_late=True, ignore_result=True)
def expire_reservations() -> int:
    """Beat: cancel unpaid orders whose stock hold ran out, and release the stock."""
    return orders_expire_unpaid()
