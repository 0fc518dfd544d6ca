"""A server-rendered SVG bar chart (no JavaScript, no CDN): geometry computed here, drawn by
the template with <rect> elements."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 16, 36


@dataclass(frozen=True)
class Bar:
    day: date
    amount: Decimal
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class BarChart:
    currency: str
    bars: list[Bar]
    total: Decimal
    maximum: Decimal
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    baseline: int = HEIGHT - BOTTOM

    @property
    def ticks(self) -> list[tuple[float, Decimal]]:
        """Three horizontal grid lines: (y, amount)."""
        plot = self.baseline - self.top
        return [(self.baseline - plot * f, (self.maximum * Decimal(f)).quantize(Decimal("1"))) for f in (0.5, 1.0)]


def revenue_bar_chart(*, currency: str, series: list[tuple[date, Decimal]]) -> BarChart:
    """One bar per day; the tallest reaches the top. Amounts stay Decimal (labels, titles)."""
    maximum = max((amount for _, amount in series), default=Decimal(0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(series), 1)
    bars = []
    for i, (day, amount) in enumerate(series):
        # A day of refunds alone nets negative: no bar (its title still says the amount).
        height = float(max(amount, Decimal(0)) / maximum) * plot_h if maximum > 0 else 0.0
        bars.append(
            Bar(
                day=day,
                amount=amount,
                x=round(LEFT + i * slot + slot * 0.15, 2),
                y=round(HEIGHT - BOTTOM - height, 2),
                width=round(slot * 0.7, 2),
                height=round(height, 2),
            )
        )
    return BarChart(currency=currency, bars=bars, total=sum((a for _, a in series), Decimal(0)), maximum=maximum)
