"""Order totals (orders/pricing.py) and the money helpers they rest on (common/money.py)."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import ValidationFailed
from common.money import money_allocate, money_round
from orders.pricing import coupon_discount, totals_compute

CENT = Decimal("0.01")
RATES = [Decimal("0"), Decimal("0.0550"), Decimal("0.1000"), Decimal("0.2000")]

prices = st.decimals(min_value=Decimal("0.00"), max_value=Decimal("999.99"), places=2)
lines_strategy = st.lists(
    st.tuples(prices, st.integers(min_value=1, max_value=20), st.sampled_from(RATES)).map(
        lambda t: (t[0] * t[1], t[2])
    ),
    min_size=1,
    max_size=8,
)


def _is_money(amount: object, exponent: int = -2) -> bool:
    return isinstance(amount, Decimal) and amount.as_tuple().exponent == exponent


@given(lines=lines_strategy, coupon=st.sampled_from(["", "WELCOME10", "FIVEOFF", "welcome10 "]))
def test_totals_add_up_exactly(lines, coupon):
    totals = totals_compute(lines=lines, currency="EUR", coupon=coupon)

    for amount in (totals.subtotal, totals.discount, totals.shipping, totals.tax, totals.total):
        assert _is_money(amount), amount
    assert totals.total == totals.subtotal - totals.discount + totals.shipping + totals.tax
    assert totals.subtotal == sum((total for total, _ in lines), Decimal("0"))
    assert Decimal("0") <= totals.discount <= totals.subtotal
    assert totals.tax == sum(totals.tax_by_rate.values(), Decimal("0"))
    # Each rate's tax is that rate applied once, half-up, to that rate's net.
    assert sum(totals.net_by_rate.values(), Decimal("0")) == totals.subtotal - totals.discount + totals.shipping
    for rate, net in totals.net_by_rate.items():
        assert totals.tax_by_rate[rate] == money_round(net * rate, "EUR")
        assert net >= 0


@given(lines=lines_strategy)
def test_shipping_is_flat_below_the_threshold_and_free_from_it(lines):
    totals = totals_compute(lines=lines, currency="EUR")

    net = totals.subtotal - totals.discount
    expected = Decimal("0.00") if net <= 0 or net >= Decimal("50.00") else Decimal("4.90")
    assert totals.shipping == expected


@given(
    weights=st.lists(prices, min_size=1, max_size=10).filter(lambda w: sum(w) > 0),
    share=st.fractions(min_value=0, max_value=1),
)
def test_allocation_sums_exactly_and_stays_within_each_line(weights, share):
    weight_sum = sum(weights, Decimal("0"))
    total = money_round(weight_sum * share.numerator / share.denominator, "EUR")

    parts = money_allocate(total, weights, "EUR")

    assert sum(parts, Decimal("0")) == total
    assert len(parts) == len(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert _is_money(part)
        assert Decimal("0") <= part <= weight
        assert abs(part - total * weight / weight_sum) < CENT  # within one minor unit of exact


@given(weights=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=6), total=st.integers(0, 500))
def test_allocation_in_a_zero_decimal_currency_gives_whole_units(weights, total):
    weights_d = [Decimal(w) for w in weights]

    parts = money_allocate(Decimal(total), weights_d, "JPY")

    if sum(weights) == 0:
        assert parts == [Decimal("0")] * len(weights)
    else:
        assert sum(parts, Decimal("0")) == total
        assert all(p == p.to_integral_value() for p in parts)


def test_allocation_gives_leftover_cents_to_the_largest_remainders():
    assert money_allocate(Decimal("0.10"), [Decimal("1"), Decimal("1"), Decimal("1")], "EUR") == [
        Decimal("0.04"), Decimal("0.03"), Decimal("0.03"),
    ]  # fmt: skip
    assert money_allocate(Decimal("1.00"), [Decimal("1"), Decimal("2")], "EUR") == [Decimal("0.33"), Decimal("0.67")]
    assert money_allocate(Decimal("5.00"), [], "EUR") == []


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("0.005", "EUR", "0.01"),
        ("0.025", "EUR", "0.03"),  # half-up, not banker's rounding (which gives 0.02)
        ("2.675", "EUR", "2.68"),
        ("2.6749", "EUR", "2.67"),
        ("-0.005", "EUR", "-0.01"),
        ("0.5", "JPY", "1"),
        ("2.5", "JPY", "3"),
        ("0.0005", "BHD", "0.001"),
        ("7", "EUR", "7.00"),
    ],
)
def test_rounding_is_half_up_to_the_currencys_minor_unit(amount, currency, expected):
    rounded = money_round(Decimal(amount), currency)

    assert rounded == Decimal(expected)
    assert str(rounded) == expected


def test_money_refuses_floats():
    with pytest.raises(TypeError, match="Decimal"):
        money_round(0.1, "EUR")  # type: ignore[arg-type]


def test_a_known_order_prices_exactly():
    # 2 x 12.50 at 20% + 1 x 8.00 at 5.5%, shipping 4.90 taxed at 20%.
    totals = totals_compute(
        lines=[(Decimal("25.00"), Decimal("0.2000")), (Decimal("8.00"), Decimal("0.0550"))], currency="EUR"
    )

    assert (totals.subtotal, totals.discount, totals.shipping, totals.tax, totals.total) == (
        Decimal("33.00"), Decimal("0.00"), Decimal("4.90"), Decimal("6.42"), Decimal("44.32"),
    )  # fmt: skip
    assert totals.tax_by_rate == {Decimal("0.0550"): Decimal("0.44"), Decimal("0.2000"): Decimal("5.98")}


def test_percent_coupon_discount_is_spread_before_tax():
    # WELCOME10 on 40.00 + 20.00: 6.00 off, allocated 4.00 / 2.00; net 54.00 ships free.
    totals = totals_compute(
        lines=[(Decimal("40.00"), Decimal("0.2000")), (Decimal("20.00"), Decimal("0.1000"))],
        currency="EUR",
        coupon="WELCOME10",
    )

    assert totals.discount == Decimal("6.00")
    assert totals.shipping == Decimal("0.00")
    assert totals.net_by_rate == {Decimal("0.1000"): Decimal("18.00"), Decimal("0.2000"): Decimal("36.00")}
    assert totals.tax == Decimal("1.80") + Decimal("7.20")
    assert totals.total == Decimal("63.00")


@pytest.mark.parametrize(
    ("code", "subtotal", "expected"),
    [
        ("WELCOME10", "33.33", "3.33"),
        ("WELCOME10", "0.05", "0.01"),  # 0.005 rounds half-up
        ("welcome10", "100.00", "10.00"),
        (" FIVEOFF ", "20.00", "5.00"),
        ("FIVEOFF", "3.00", "3.00"),  # never more than the subtotal
    ],
)
def test_coupon_rules(code, subtotal, expected):
    assert coupon_discount(code=code, subtotal=Decimal(subtotal), currency="EUR") == Decimal(expected)


def test_unknown_coupon_is_a_validation_error():
    with pytest.raises(ValidationFailed) as caught:
        totals_compute(lines=[(Decimal("10.00"), Decimal("0.2"))], currency="EUR", coupon="NOPE")

    assert caught.value.status_code == 400
    assert caught.value.details == {"coupon": ["Unknown coupon code."]}


def test_misconfigured_coupon_is_refused_not_crashed(settings):
    settings.COUPONS = {"BROKEN": "ten%"}

    with pytest.raises(ValidationFailed):
        coupon_discount(code="BROKEN", subtotal=Decimal("10.00"), currency="EUR")


@pytest.mark.parametrize(("net", "shipping"), [("49.99", "4.90"), ("50.00", "0.00"), ("0.00", "0.00")])
def test_free_shipping_threshold(net, shipping):
    lines = [(Decimal(net), Decimal("0.2000"))]

    assert totals_compute(lines=lines, currency="EUR").shipping == Decimal(shipping)


def test_explicit_shipping_overrides_the_rule():
    totals = totals_compute(lines=[(Decimal("100.00"), Decimal("0.2000"))], currency="EUR", shipping=Decimal("7.5"))

    assert totals.shipping == Decimal("7.50")
    assert totals.tax == Decimal("21.50")
    assert totals.total == Decimal("129.00")
