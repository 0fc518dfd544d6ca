"""Order totals: a pure function of the lines, the coupon and the shipping rule.

Prices are net. The discount is spread over the lines in proportion to their totals
(exactly, by largest remainder); VAT is computed per rate on the discounted net, and
shipping is taxed at the default rate. Rounding happens once per rate (common.money).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.conf import settings

from common.errors import ValidationFailed
from common.money import ZERO, money_allocate, money_round


@dataclass(frozen=True)
class Totals:
    currency: str
    subtotal: Decimal
    discount: Decimal
    shipping: Decimal
    tax: Decimal
    total: Decimal
    tax_by_rate: dict[Decimal, Decimal] = field(default_factory=dict)
    # The net amount each rate is charged on (discounted lines, plus shipping at the default rate).
    net_by_rate: dict[Decimal, Decimal] = field(default_factory=dict)


def coupon_discount(*, code: str, subtotal: Decimal, currency: str) -> Decimal:
    """The discount a coupon code gives on `subtotal` (never more than the subtotal)."""
    rules = {k.upper(): v for k, v in settings.COUPONS.items()}
    rule = rules.get(code.strip().upper())
    if rule is None:
        raise ValidationFailed("This coupon code is not valid.", details={"coupon": ["Unknown coupon code."]})
    try:
        if rule.endswith("%"):
            amount = money_round(subtotal * Decimal(rule[:-1]) / Decimal(100), currency)
        else:
            amount = money_round(Decimal(rule), currency)
    except InvalidOperation as exc:  # a misconfigured COUPONS setting
        raise ValidationFailed("This coupon code is not valid.", details={"coupon": [str(exc)]}) from exc
    return min(amount, subtotal)


def shipping_for(*, net: Decimal, currency: str) -> Decimal:
    if net <= 0 or net >= settings.FREE_SHIPPING_OVER:
        return money_round(ZERO, currency)
    return money_round(settings.SHIPPING_FLAT, currency)


def totals_compute(
    *,
    lines: list[tuple[Decimal, Decimal]],
    currency: str,
    coupon: str = "",
    shipping: Decimal | None = None,
) -> Totals:
    """Totals for (line_total, tax_rate) pairs. `shipping=None` applies the shop's rule."""
    subtotal = money_round(sum((total for total, _ in lines), ZERO), currency)
    discount = coupon_discount(code=coupon, subtotal=subtotal, currency=currency) if coupon else ZERO
    discount = money_round(discount, currency)
    if shipping is None:
        shipping = shipping_for(net=subtotal - discount, currency=currency)
    shipping = money_round(shipping, currency)

    net_by_rate = taxable_by_rate(lines=lines, discount=discount, shipping=shipping, currency=currency)
    tax_by_rate = {rate: money_round(net * rate, currency) for rate, net in net_by_rate.items()}
    tax = sum(tax_by_rate.values(), ZERO)
    return Totals(
        currency=currency,
        subtotal=subtotal,
        discount=discount,
        shipping=shipping,
        tax=money_round(tax, currency),
        total=money_round(subtotal - discount + shipping + tax, currency),
        tax_by_rate=tax_by_rate,
        net_by_rate=net_by_rate,
    )


def taxable_by_rate(
    *, lines: list[tuple[Decimal, Decimal]], discount: Decimal, shipping: Decimal, currency: str
) -> dict[Decimal, Decimal]:
    """The net charged at each rate, rates ascending: the discount spread over the lines in
    proportion to their totals (exact to the minor unit), shipping at the default rate."""
    allocations = money_allocate(discount, [total for total, _ in lines], currency)
    taxable: dict[Decimal, Decimal] = defaultdict(lambda: ZERO)
    for (line_total, rate), line_discount in zip(lines, allocations, strict=True):
        taxable[rate] += line_total - line_discount
    if shipping:
        taxable[Decimal(settings.DEFAULT_TAX_RATE)] += shipping
    return dict(sorted(taxable.items()))
