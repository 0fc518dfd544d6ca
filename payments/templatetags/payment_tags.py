from django import template

from orders.models import Order
from payments.models import PaymentAttempt
from payments.providers import payment_provider
from payments.selectors import PaymentSummary, payment_summary_for_order

register = template.Library()


@register.simple_tag
def payment_summary(order: Order) -> PaymentSummary:
    return payment_summary_for_order(order=order)


@register.filter
def payment_method_label(attempt: PaymentAttempt) -> str:
    """The attempt's method as a shopper reads it ("Test card, succeeds")."""
    try:
        return payment_provider(attempt.provider).method_label(attempt.payment_method)
    except LookupError:
        return attempt.payment_method
