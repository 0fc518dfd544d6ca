"""The totals block of the storefront (templates/orders/_totals.html) for a cart or an
order, per PRICES_INCLUDE_TAX: VAT-inclusive rows with the VAT included per rate, or net rows
with the VAT added per rate. The amounts are the order's own (orders.pricing); only the way
they are split into rows changes, and the rows always add up to the total exactly."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import template
from django.conf import settings

from common.money import ZERO, money_allocate, money_round
from inventory.templatetags.shop_prices import price_shown, rate_percent
from orders.pricing import taxable_by_rate

register = template.Library()


@dataclass(frozen=True)
class TotalsRow:
    label: str
    amount: Decimal | None  # None: "Free"
    negative: bool = False
    kind: str = "line"  # line | tax | grand | included


def _line_pairs(totals: Any) -> list[tuple[Decimal, Decimal]]:
    lines = totals.lines if isinstance(totals.lines, list) else list(totals.lines.all())
    pairs = []
    for line in lines:
        rate = line.tax_rate if hasattr(line, "tax_rate") else line.product.tax_rate
        pairs.append((Decimal(line.line_total), Decimal(rate)))
    return pairs


def totals_rows(*, totals: Any, coupon: str = "") -> list[TotalsRow]:
    """Rows for `totals` (a CartView or an Order: subtotal, discount, shipping, tax, total,
    currency and lines with line_total and a tax rate)."""
    currency = totals.currency
    pairs = _line_pairs(totals)
    net_by_rate = taxable_by_rate(lines=pairs, discount=totals.discount, shipping=totals.shipping, currency=currency)
    tax_by_rate = {rate: money_round(net * rate, currency) for rate, net in net_by_rate.items() if rate}
    # An old row priced another way (the rates do not give its tax): one VAT row, no rate.
    consistent = sum(tax_by_rate.values(), ZERO) == totals.tax
    tax_rows: list[tuple[Decimal | None, Decimal]] = list(tax_by_rate.items()) if consistent else [(None, totals.tax)]
    discount_label = f"Discount ({coupon})" if coupon else "Discount"
    rows: list[TotalsRow] = []
    if settings.PRICES_INCLUDE_TAX:
        shipping = price_shown(net=totals.shipping, rate=settings.DEFAULT_TAX_RATE, currency=currency)
        shares = money_allocate(totals.discount, [total for total, _ in pairs], currency) if pairs else []
        discount = sum(
            (
                price_shown(net=share, rate=rate, currency=currency)
                for share, (_, rate) in zip(shares, pairs, strict=True)
            ),
            ZERO,
        )
        # Derived so the rows add up to the charged total to the cent.
        subtotal = totals.total + discount - shipping
        rows.append(TotalsRow("Subtotal", subtotal))
        if totals.discount:
            rows.append(TotalsRow(discount_label, discount, negative=True))
        rows.append(TotalsRow("Shipping", shipping or None))
        rows.append(TotalsRow("Total", totals.total, kind="grand"))
        for rate, tax in tax_rows:
            label = f"Includes VAT {rate_percent(rate)}" if rate is not None else "Includes VAT"
            rows.append(TotalsRow(label, tax, kind="included"))
    else:
        rows.append(TotalsRow("Subtotal", totals.subtotal))
        if totals.discount:
            rows.append(TotalsRow(discount_label, totals.discount, negative=True))
        rows.append(TotalsRow("Shipping", totals.shipping or None))
        for rate, tax in tax_rows:
            rows.append(TotalsRow(f"VAT {rate_percent(rate)}" if rate is not None else "VAT", tax, kind="tax"))
        rows.append(TotalsRow("Total", totals.total, kind="grand"))
    return rows


@register.simple_tag
def totals_display(totals: Any, coupon: str = "") -> list[TotalsRow]:
    return totals_rows(totals=totals, coupon=coupon or getattr(totals, "coupon_code", "") or "")


@register.simple_tag
def line_shown_total(line: Any, currency: str) -> Decimal:
    """A cart line's total as displayed (with VAT when PRICES_INCLUDE_TAX)."""
    rate = line.tax_rate if hasattr(line, "tax_rate") else line.product.tax_rate
    return price_shown(net=Decimal(line.line_total), rate=Decimal(rate), currency=currency)


@register.simple_tag
def unit_shown_price(line: Any, currency: str) -> Decimal:
    rate = line.tax_rate if hasattr(line, "tax_rate") else line.product.tax_rate
    unit = line.unit_price if hasattr(line, "unit_price") else line.product.price
    return price_shown(net=Decimal(unit), rate=Decimal(rate), currency=currency)
