"""The admin cockpit: every figure equals what the database holds, and its link opens the admin
list of exactly those rows; apps are listed in the order staff use them."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission

from common.tests.factories import ProductFactory, StaffFactory
from common.tests.helpers import place_order
from flows.dashboard import dashboard_figures
from flows.order_paid import order_place_paid
from inventory.models import Product, Reservation
from invoicing.models import Invoice
from orders.models import Order
from payments.models import PaymentAttempt, SimulatedDelivery

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # a Tuesday afternoon


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def _attempt(order: Order, *, status: str = "processing", age: timedelta = timedelta(0), n: int = 0) -> PaymentAttempt:
    attempt = PaymentAttempt.objects.create(
        order=order, amount=order.total, currency=order.currency, provider_reference=f"sim_{order.pk}_{n}"
    )
    final = {"failure_code": "declined", "completed_at": NOW} if status == "failed" else {}
    PaymentAttempt.objects.filter(pk=attempt.pk).update(created_at=NOW - age, status=status, **final)
    return attempt


def _delivery(attempt: PaymentAttempt, *, step: int, status: str, tries: int) -> None:
    SimulatedDelivery.objects.create(
        attempt=attempt,
        script="success",
        step=step,
        event_id=f"evt_{attempt.pk}_{step}",
        event_type="payment.succeeded",
        url="http://127.0.0.1/api/v1/webhooks/payments/",
        started_at=NOW,
        status=status,
        tries=tries,
        next_attempt_at=NOW,
        delivered_at=NOW if status == "delivered" else None,
    )


@pytest.fixture
def shop(frozen):
    """A day's worth of rows, some inside each window and some just outside."""
    product = ProductFactory(sku="BIG", on_hand=1000, price=Decimal("10.00"))
    today = [place_order(product=product, quantity=q) for q in (1, 2, 3)]
    last_week_in = [place_order(product=product, quantity=1) for _ in range(2)]
    last_week_late = place_order(product=product, quantity=1)
    yesterday = place_order(product=product, quantity=1)
    Order.objects.filter(pk__in=[o.pk for o in last_week_in]).update(created_at=NOW - timedelta(days=7, hours=3))
    Order.objects.filter(pk=last_week_late.pk).update(created_at=NOW - timedelta(days=7) + timedelta(hours=2))
    Order.objects.filter(pk=yesterday.pk).update(created_at=NOW - timedelta(days=1))

    # Revenue: two of today's orders paid today; one of last week's paid then; one paid
    # order placed yesterday (outside every window).
    order_place_paid(order_id=today[0].pk)
    order_place_paid(order_id=today[1].pk)
    order_place_paid(order_id=last_week_in[0].pk)
    Order.objects.filter(pk=last_week_in[0].pk).update(placed_at=NOW - timedelta(days=7, hours=2))
    order_place_paid(order_id=yesterday.pk)
    Order.objects.filter(pk=yesterday.pk).update(placed_at=NOW - timedelta(days=1))
    Invoice.objects.filter(order=today[0]).update(created_at=NOW - timedelta(hours=2, minutes=5))
    Invoice.objects.filter(order=yesterday).update(status="issued", number=1, issued_at=NOW)

    # Payments: one stuck (20 min), one recent (2 min), one old but failed.
    stuck = _attempt(today[2], age=timedelta(minutes=20))
    _attempt(last_week_late, age=timedelta(minutes=2))
    _attempt(last_week_in[1], status="failed", age=timedelta(hours=1))

    _delivery(stuck, step=0, status="abandoned", tries=30)
    _delivery(stuck, step=1, status="scheduled", tries=3)
    _delivery(stuck, step=2, status="scheduled", tries=0)
    _delivery(stuck, step=3, status="delivered", tries=1)

    # Reservations: today's unpaid order's expires in 5 min, last week's late one in 40 min.
    Reservation.objects.filter(order_line__order=today[2]).update(expires_at=NOW + timedelta(minutes=5))
    Reservation.objects.filter(order_line__order=last_week_late).update(expires_at=NOW + timedelta(minutes=40))

    # Stock: 5 available is low (threshold 5), 6 is not, 0 is out; an inactive one is ignored.
    ProductFactory(sku="LOW", on_hand=5)
    ProductFactory(sku="OK", on_hand=6)
    ProductFactory(sku="OUT", on_hand=0)
    ProductFactory(sku="GONE", on_hand=0, is_active=False)
    return {"today": today}


def _by_key() -> dict:
    return {f.key: f for f in dashboard_figures()}


def test_each_figure_equals_the_database(shop, settings):
    settings.LOW_STOCK_THRESHOLD = 5
    figures = _by_key()

    # Independent reads of the same facts (plain filters over all rows, in Python).
    day_start = NOW.replace(hour=0)
    orders = list(Order.objects.all())
    created_today = [o for o in orders if day_start <= o.created_at < day_start + timedelta(days=1)]
    created_then = [o for o in orders if day_start - timedelta(days=7) <= o.created_at < NOW - timedelta(days=7)]
    placed_today = [o for o in orders if o.placed_at and day_start <= o.placed_at < day_start + timedelta(days=1)]
    placed_then = [
        o for o in orders if o.placed_at and day_start - timedelta(days=7) <= o.placed_at < NOW - timedelta(days=7)
    ]
    pending = [i for i in Invoice.objects.all() if i.status == "pending"]
    stuck = [
        a
        for a in PaymentAttempt.objects.all()
        if a.status == "processing" and a.created_at < NOW - timedelta(minutes=10)
    ]
    deliveries = list(SimulatedDelivery.objects.all())
    reservations = [
        r
        for r in Reservation.objects.all()
        if r.status == "active" and NOW <= r.expires_at < NOW + timedelta(minutes=15)
    ]
    free = {
        p.sku: p.stock.on_hand - p.stock.reserved
        for p in Product.objects.filter(is_active=True).select_related("stock")
    }

    assert (
        figures["orders_today"].numbers
        == {"today": len(created_today), "last_week": len(created_then)}
        == {"today": 3, "last_week": 2}
    )
    assert figures["revenue_today"].numbers == {
        "today": {"EUR": sum(o.total for o in placed_today)},
        "last_week": {"EUR": sum(o.total for o in placed_then)},
    }
    assert figures["pending_invoices"].numbers == {
        "count": len(pending),
        "oldest_created_at": min(i.created_at for i in pending),
    }
    assert len(pending) == 3  # today x2 and last week's paid order (yesterday's is issued)
    assert figures["pending_invoices"].detail == "oldest waiting 2 h 5 min"
    assert figures["payments_stuck"].numbers == {"count": len(stuck)} == {"count": 1}
    assert (
        figures["webhooks_failed"].numbers
        == {
            "abandoned": sum(d.status == "abandoned" for d in deliveries),
            "failing": sum(d.status == "scheduled" and d.tries > 0 for d in deliveries),
        }
        == {"abandoned": 1, "failing": 1}
    )
    assert figures["reservations_expiring"].numbers == {
        "count": len(reservations),
        "units": sum(r.quantity for r in reservations),
    }
    assert figures["reservations_expiring"].numbers == {"count": 1, "units": 3}
    assert figures["low_stock"].numbers == {
        "low": sum(v <= 5 for v in free.values()),
        "out": sum(v <= 0 for v in free.values()),
    }
    assert figures["low_stock"].numbers == {"low": 2, "out": 1}


def test_the_revenue_is_the_placed_orders_total(shop):
    figures = _by_key()
    paid_today = Order.objects.filter(pk__in=[o.pk for o in shop["today"][:2]])

    assert figures["revenue_today"].numbers["today"] == {"EUR": sum(o.total for o in paid_today)}
    assert figures["revenue_today"].value == f"{sum(o.total for o in paid_today):,.2f} EUR"


def _count_on(client, url: str) -> int:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.context["cl"].result_count


def test_each_figure_links_to_the_list_of_exactly_its_rows(shop, client):
    client.force_login(StaffFactory(is_superuser=True))
    figures = _by_key()

    assert _count_on(client, figures["orders_today"].url) == 3
    assert _count_on(client, figures["orders_today"].detail_url) == 2
    assert _count_on(client, figures["revenue_today"].url) == 2
    assert _count_on(client, figures["pending_invoices"].url) == 3
    assert _count_on(client, figures["payments_stuck"].url) == 1
    assert _count_on(client, figures["webhooks_failed"].url) == 1
    assert _count_on(client, figures["webhooks_failed"].detail_url) == 1
    assert _count_on(client, figures["reservations_expiring"].url) == 1
    assert _count_on(client, figures["low_stock"].url) == 2
    assert _count_on(client, figures["low_stock"].detail_url) == 1
    oldest = Invoice.objects.filter(status="pending").order_by("created_at").first()
    assert figures["pending_invoices"].detail_url == f"/admin/invoicing/invoice/{oldest.pk}/change/"


def test_the_admin_index_shows_the_figures_with_their_links(shop, client):
    client.force_login(StaffFactory(is_superuser=True))
    figures = _by_key()

    html = client.get("/admin/").content.decode()

    for figure in figures.values():
        shown = re.search(rf'data-testid="figure-{figure.key}">([^<]*)<', html)
        assert shown is not None, figure.key
        assert shown.group(1) == figure.value
        assert f'href="{figure.url.replace("&", "&amp;")}"' in html
    assert "Orders today" in html


def test_staff_see_only_the_figures_they_may_open(shop, client):
    clerk = StaffFactory(staff_group=False)
    clerk.user_permissions.add(*Permission.objects.filter(codename="view_order"))
    client.force_login(clerk)

    html = client.get("/admin/").content.decode()

    assert 'data-figure="orders_today"' in html
    assert 'data-figure="pending_invoices"' not in html


def test_apps_are_listed_in_the_order_staff_use_them(client):
    client.force_login(StaffFactory(is_superuser=True))

    apps = [app["app_label"] for app in client.get("/admin/").context["app_list"]]

    assert apps[:4] == ["orders", "invoicing", "payments", "inventory"]
    assert apps[-3:] == ["authtoken", "axes", "common"] or apps[-4:] == ["knox", "authtoken", "axes", "common"]
    assert apps.index("auth") < apps.index("axes")


def test_an_empty_shop_shows_zeros_not_errors(client, frozen):
    client.force_login(StaffFactory(is_superuser=True))

    response = client.get("/admin/")

    figures = _by_key()
    assert response.status_code == 200
    assert figures["orders_today"].value == "0"
    assert figures["orders_today"].detail == "same vs 0 last Tuesday by this time"
    assert figures["revenue_today"].value == "0.00 EUR"
    assert figures["pending_invoices"].detail == "none waiting"
