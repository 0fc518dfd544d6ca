from celery import shared_task

from payments.providers.simulated import simulated_deliveries_kick_due, simulated_delivery_run
from payments.refunds import refunds_resubmit
from payments.services import payment_attempts_fail_stale, payment_charges_resubmit


@shared_task(name="payments.simulated_deliver", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def simulated_deliver(delivery_id: int) -> str:
    """The simulated provider: send one owed webhook (payments.models.SimulatedDelivery).
    The row holds the retry state: a failed try schedules its own retry, and beat re-kicks
    deliveries whose message was lost. Running it twice sends once (a claimed lease)."""
    return simulated_delivery_run(delivery_id=delivery_id).outcome


@shared_task(name="payments.kick_due_deliveries", ignore_result=True)
def kick_due_deliveries() -> int:
    """Beat: re-kick owed webhooks whose time has passed (a lost message, a killed worker)."""
    return simulated_deliveries_kick_due()


@shared_task(name="payments.resubmit_charges", ignore_result=True)
def resubmit_charges() -> int:
    """Beat: charge requests whose after-commit call was lost go to the provider again."""
    return payment_charges_resubmit()


@shared_task(name="payments.fail_stale_attempts", ignore_result=True)
def fail_stale_attempts() -> int:
    """Beat: fail attempts the provider never answered (PAYMENT_PROCESSING_TIMEOUT_S)."""
    return payment_attempts_fail_stale()


@shared_task(name="payments.resubmit_refunds", ignore_result=True)
def resubmit_refunds() -> int:
    """Beat: pending refunds whose after-commit call to the provider was lost go again."""
    return refunds_resubmit()
