from django import template

from orders.models import Order
from payments.selectors import PaymentSummary, payment_summary_for_order

register = template.Library()


@register.simple_tag
def payment_summary(order: Order) -> PaymentSummary:
    return payment_summary_for_order(order=order)
