"""Storefront price display per PRICES_INCLUDE_TAX (settings): the stored price is net; a
consumer shop shows it with VAT, a business shop without. Display only, rounded once with
the system's rule (common.money)."""

from decimal import Decimal

from django import template
from django.conf import settings

from common.money import money_round

register = template.Library()


def price_shown(*, net: Decimal, rate: Decimal, currency: str) -> Decimal:
    """A net amount as the shop displays it."""
    if settings.PRICES_INCLUDE_TAX:
        return money_round(net * (1 + rate), currency)
    return money_round(net, currency)


@register.filter
def shown_price(product: object) -> Decimal:
    """A product's price as displayed: `{{ product|shown_price }}`."""
    return price_shown(net=product.price, rate=product.tax_rate, currency=product.currency)  # type: ignore[attr-defined]


@register.simple_tag
def tax_note(rate: Decimal | None = None) -> str:
    """ "incl. 20 % VAT" or "excl. 20 % VAT" (without a rate: "incl. VAT")."""
    word = "incl." if settings.PRICES_INCLUDE_TAX else "excl."
    return f"{word} {rate_percent(rate)} VAT" if rate is not None else f"{word} VAT"


@register.filter
def rate_percent(rate: Decimal | str) -> str:
    """0.2000 -> "20 %", 0.0550 -> "5.5 %": exact, no float on the way."""
    value = (Decimal(rate) * 100).normalize()
    return f"{value:f}\u00a0%"


@register.simple_tag
def prices_include_tax() -> bool:
    return bool(settings.PRICES_INCLUDE_TAX)
