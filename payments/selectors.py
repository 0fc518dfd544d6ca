from django.db.models import QuerySet

from payments.models import PaymentAttempt


def payment_attempts_for_order(*, order_id: int) -> QuerySet[PaymentAttempt]:
    return PaymentAttempt.objects.filter(order_id=order_id).order_by("-created_at", "-id")
