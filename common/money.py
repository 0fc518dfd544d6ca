"""Money helpers: Decimal amounts with an ISO 4217 currency, rounded half-up in one place."""

from decimal import ROUND_HALF_UP, Decimal

# Minor units per currency (ISO 4217); anything not listed has two.
_EXPONENTS = {"JPY": 0, "KRW": 0, "ISK": 0, "BHD": 3, "KWD": 3, "JOD": 3, "TND": 3}

ZERO = Decimal("0")


def currency_exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def money_round(amount: Decimal, currency: str) -> Decimal:
    """The only rounding rule of the system: half-up to the currency's minor unit."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be Decimal, got {type(amount).__name__}")
    quantum = Decimal(1).scaleb(-currency_exponent(currency))
    return amount.quantize(quantum, rounding=ROUND_HALF_UP)


def money_allocate(total: Decimal, weights: list[Decimal], currency: str) -> list[Decimal]:
    """Split `total` over `weights` proportionally so the parts sum to `total` exactly
    (largest remainder: leftover minor units go to the largest fractional parts)."""
    if not weights:
        return []
    weight_sum = sum(weights, ZERO)
    if weight_sum == 0:
        return [ZERO for _ in weights]
    unit = Decimal(1).scaleb(-currency_exponent(currency))
    raw = [total * w / weight_sum for w in weights]
    floors = [(r / unit).to_integral_value(rounding="ROUND_FLOOR") * unit for r in raw]
    leftover = int(((total - sum(floors, ZERO)) / unit).to_integral_value())
    order = sorted(range(len(raw)), key=lambda i: (raw[i] - floors[i], -i), reverse=True)
    for i in order[:leftover]:
        floors[i] += unit
    return [money_round(f, currency) for f in floors]
