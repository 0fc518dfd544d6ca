"""The staff cockpit on the admin index: the day's figures, read from every app (hence here,
above the apps). Reads only; each figure carries the link to the admin list that shows
exactly the rows it counts (the same filter, the same window).

Windows are UTC days (TIME_ZONE is UTC). "Today vs last week" compares today so far with the
same weekday seven days earlier up to the same time of day, so a morning is never compared
with a whole day.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, F, Min, Q, Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from inventory.models import Product, Reservation, ReservationStatus
from invoicing.models import Invoice, InvoiceStatus
from orders.models import Order, OrderStatus
from payments.models import DeliveryStatus, PaymentAttempt, PaymentStatus, SimulatedDelivery

# A payment attempt still processing after this long is worth a look (beat fails it after
# PAYMENT_PROCESSING_TIMEOUT_S); a reservation expiring within this window is about to go.
PAYMENT_STUCK_AFTER = timedelta(minutes=10)
RESERVATION_EXPIRING_WITHIN = timedelta(minutes=15)


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    value: str
    url: str
    detail: str = ""
    detail_url: str = ""
    perm: str = ""  # the view permission of the rows it counts: staff without it do not see it
    tone: str = "neutral"  # neutral | ok | warn | bad: how the cockpit colours it
    # The raw numbers behind the text (tests compare them with the database).
    numbers: dict[str, object] = field(default_factory=dict)


def _changelist(model: type, params: Mapping[str, object]) -> str:
    meta = model._meta  # type: ignore[attr-defined]
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    return f"{url}?{urlencode({k: str(v) for k, v in params.items()})}" if params else url


def _money(amounts: dict[str, Decimal]) -> str:
    if not amounts:
        return f"0.00 {settings.DEFAULT_CURRENCY}"
    return " + ".join(f"{amount:,.2f} {currency}" for currency, amount in sorted(amounts.items()))


def _age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60} min"
    return f"{hours // 24} days"


def _revenue(*, start: datetime, end: datetime) -> dict[str, Decimal]:
    rows = (
        Order.objects.filter(placed_at__gte=start, placed_at__lt=end)
        .exclude(status=OrderStatus.CANCELLED)
        .values("currency")
        .annotate(total=Sum("total"))
    )
    return {row["currency"]: row["total"] for row in rows}


def _compare(now_value: Decimal | int, then_value: Decimal | int) -> str:
    if then_value == 0:
        return "new" if now_value else "same"
    change = (Decimal(now_value) - Decimal(then_value)) / Decimal(then_value) * 100
    return f"{change:+.0f} %"


def dashboard_figures(*, now: datetime | None = None) -> list[Figure]:
    """The cockpit's figures, in the order staff read them."""
    now = now or timezone.now()
    today = datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
    tomorrow = today + timedelta(days=1)
    week_ago_start, week_ago_now = today - timedelta(days=7), now - timedelta(days=7)
    weekday = week_ago_start.strftime("%A")

    orders_today = Order.objects.filter(created_at__gte=today, created_at__lt=tomorrow).count()
    orders_then = Order.objects.filter(created_at__gte=week_ago_start, created_at__lt=week_ago_now).count()
    revenue_today = _revenue(start=today, end=tomorrow)
    revenue_then = _revenue(start=week_ago_start, end=week_ago_now)
    default = settings.DEFAULT_CURRENCY

    pending = Invoice.objects.filter(status=InvoiceStatus.PENDING).aggregate(n=Count("id"), oldest=Min("created_at"))
    oldest_pending = (
        Invoice.objects.filter(status=InvoiceStatus.PENDING).order_by("created_at", "id").values_list("pk", flat=True)
    ).first()
    stuck_before = now - PAYMENT_STUCK_AFTER
    stuck = PaymentAttempt.objects.filter(status=PaymentStatus.PROCESSING, created_at__lt=stuck_before).count()
    deliveries = SimulatedDelivery.objects.aggregate(
        abandoned=Count("id", filter=Q(status=DeliveryStatus.ABANDONED)),
        failing=Count("id", filter=Q(status=DeliveryStatus.SCHEDULED, tries__gt=0)),
    )
    expiring_until = now + RESERVATION_EXPIRING_WITHIN
    expiring = Reservation.objects.filter(
        status=ReservationStatus.ACTIVE, expires_at__gte=now, expires_at__lt=expiring_until
    ).aggregate(n=Count("id"), units=Sum("quantity"))
    threshold = settings.LOW_STOCK_THRESHOLD
    low = Product.objects.filter(is_active=True).annotate(free=F("stock__on_hand") - F("stock__reserved"))
    low_stock = low.filter(free__lte=threshold).count()
    out_of_stock = low.filter(free__lte=0).count()

    day = {"created_at__gte": today, "created_at__lt": tomorrow}
    placed = {"placed_at__gte": today, "placed_at__lt": tomorrow}
    oldest_age = now - pending["oldest"] if pending["oldest"] else None
    return [
        Figure(
            key="orders_today",
            perm="orders.view_order",
            label="Orders today",
            value=str(orders_today),
            url=_changelist(Order, day),
            detail=f"{_compare(orders_today, orders_then)} vs {orders_then} last {weekday} by this time",
            detail_url=_changelist(Order, {"created_at__gte": week_ago_start, "created_at__lt": week_ago_now}),
            numbers={"today": orders_today, "last_week": orders_then},
        ),
        Figure(
            key="revenue_today",
            perm="orders.view_order",
            label="Revenue today",
            value=_money(revenue_today),
            url=_changelist(Order, placed),
            detail=(
                f"{_compare(revenue_today.get(default, Decimal(0)), revenue_then.get(default, Decimal(0)))}"
                f" vs {_money(revenue_then)} last {weekday} by this time"
            ),
            detail_url=_changelist(Order, {"placed_at__gte": week_ago_start, "placed_at__lt": week_ago_now}),
            numbers={"today": revenue_today, "last_week": revenue_then},
        ),
        Figure(
            key="pending_invoices",
            perm="invoicing.view_invoice",
            label="Invoices awaiting a number",
            value=str(pending["n"]),
            url=_changelist(Invoice, {"status__exact": InvoiceStatus.PENDING}),
            detail=f"oldest waiting {_age(oldest_age)}" if oldest_age is not None else "none waiting",
            detail_url=reverse("admin:invoicing_invoice_change", args=[oldest_pending]) if oldest_pending else "",
            tone="bad" if oldest_age and oldest_age > timedelta(minutes=10) else ("warn" if pending["n"] else "ok"),
            numbers={"count": pending["n"], "oldest_created_at": pending["oldest"]},
        ),
        Figure(
            key="payments_stuck",
            perm="payments.view_paymentattempt",
            label="Payments stuck in processing",
            value=str(stuck),
            url=_changelist(
                PaymentAttempt, {"status__exact": PaymentStatus.PROCESSING, "created_at__lt": stuck_before}
            ),
            detail=f"processing for more than {PAYMENT_STUCK_AFTER.seconds // 60} min",
            tone="bad" if stuck else "ok",
            numbers={"count": stuck},
        ),
        Figure(
            key="webhooks_failed",
            perm="payments.view_simulateddelivery",
            label="Failed webhook deliveries",
            value=str(deliveries["abandoned"]),
            url=_changelist(SimulatedDelivery, {"state": DeliveryStatus.ABANDONED}),
            detail=f"{deliveries['failing']} still retrying after a failure",
            detail_url=_changelist(SimulatedDelivery, {"state": "failing"}),
            tone="bad" if deliveries["abandoned"] else ("warn" if deliveries["failing"] else "ok"),
            numbers=dict(deliveries),
        ),
        Figure(
            key="reservations_expiring",
            perm="inventory.view_reservation",
            label="Reservations expiring soon",
            value=str(expiring["n"]),
            url=_changelist(
                Reservation,
                {"status__exact": ReservationStatus.ACTIVE, "expires_at__gte": now, "expires_at__lt": expiring_until},
            ),
            detail=f"{expiring['units'] or 0} units, within {RESERVATION_EXPIRING_WITHIN.seconds // 60} min",
            tone="warn" if expiring["n"] else "ok",
            numbers={"count": expiring["n"], "units": expiring["units"] or 0},
        ),
        Figure(
            key="low_stock",
            perm="inventory.view_product",
            label="Low stock",
            value=str(low_stock),
            url=_changelist(Product, {"is_active__exact": 1, "stock": "low"}),
            detail=f"{out_of_stock} out of stock; low means {threshold} or fewer available",
            detail_url=_changelist(Product, {"is_active__exact": 1, "stock": "out"}),
            tone="bad" if out_of_stock else ("warn" if low_stock else "ok"),
            numbers={"low": low_stock, "out": out_of_stock},
        ),
    ]
