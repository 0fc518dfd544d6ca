"""Row locks of the payments app (models only; the order every flow takes them in is
written once, in flows/__init__.py)."""

from common.db import RowLookup
from payments.models import PaymentAttempt, Refund

_attempt_for_update = RowLookup(PaymentAttempt, for_update=True)


def attempt_lock(*, attempt_id: int) -> PaymentAttempt:
    """Raises PaymentAttempt.DoesNotExist. Take the attempt's order lock first."""
    attempt = _attempt_for_update(attempt_id)
    if attempt is None:
        raise PaymentAttempt.DoesNotExist(f"No payment attempt {attempt_id}.")
    return attempt


def refund_lock(*, refund_id: int) -> Refund:
    """Raises Refund.DoesNotExist. Take its order's and attempt's locks first."""
    return Refund.objects.select_for_update().get(pk=refund_id)
