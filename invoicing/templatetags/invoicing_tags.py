from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def percent(rate: Decimal | str) -> str:
    """0.2000 -> "20%", 0.0550 -> "5.5%": exact, no float on the way."""
    value = (Decimal(rate) * 100).normalize()
    return f"{value:f}%"
