"""Row locks of the payments app (models only; the order every flow takes them in is
written once, in flows/__init__.py)."""

from payments.models import PaymentAttempt, Refund


def attempt_lock(*, attempt_id: int) -> PaymentAttempt:
    """Raises PaymentAttempt.DoesNotExist. Take the attempt's order lock first."""
    return PaymentAttempt.objects.select_for_update().get(pk=attempt_id)


def refund_lock(*, refund_id: int) -> Refund:
    """Raises Refund.DoesNotExist. Take its order's and attempt's locks first."""
    return Refund.objects.select_for_update().get(pk=refund_id)
