from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def percent(rate: Decimal | str) -> str:
    """0.2000 -> "20%", 0.0550 -> "5.5%": exact, no float on the way."""
    value = (Decimal(rate) * 100).normalize()
    return f"{value:f}%"


@register.filter
def status_label(value: str) -> str:
    """partially_paid -> "Partially paid"."""
    return str(value).replace("_", " ").capitalize()
