"""Daily sales report: the right figures for a seeded day, e-mailed once per day (HTML and
plain text) even when the task runs twice, browsable in the admin with a 30-day chart."""

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from celery.schedules import crontab
from django.conf import settings as django_settings
from django.core import mail

from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import place_order, run_in_threads
from invoicing.models import Invoice, SalesReport
from invoicing.selectors import sales_report_build, sales_revenue_by_day
from invoicing.services import FaultInjector, invoice_assign_number, sales_report_send
from invoicing.tasks import send_daily_sales_report
from invoicing.tests.docs_helpers import staff_invoice, succeed, webhook
from orders.services import DraftLineSpec, order_cancel
from payments.tests.helpers import attempt_for

pytestmark = pytest.mark.django_db

DAY = date(2026, 3, 10)


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def _paid_storefront_order(when: datetime, product, quantity: int):
    with time_machine.travel(when, tick=False):
        order = place_order(product=product, quantity=quantity)
        webhook(attempt_for(order))
        invoice_assign_number(invoice_id=Invoice.objects.get(order=order).pk, fault=FaultInjector(rate=0))
    return order


@pytest.fixture
def seeded_day():
    mug = ProductFactory(sku="MUG", name="Mug", price=Decimal("10.00"), on_hand=100)
    tee = ProductFactory(sku="TEE", name="Tee", price=Decimal("25.00"), on_hand=100)
    hat = ProductFactory(sku="HAT", name="Hat", price=Decimal("30.00"), currency="USD", on_hand=100)

    _paid_storefront_order(at(23, 59, DAY - timedelta(days=1)), mug, 1)  # the day before: INV-1
    a = _paid_storefront_order(at(9), mug, 2)  # 20.00 + 4.90 shipping + 4.98 VAT = 29.88
    b = _paid_storefront_order(at(11), tee, 3)  # 75.00 + 15.00 VAT = 90.00
    c = _paid_storefront_order(at(12), hat, 1)  # 30.00 + 4.90 + 6.98 = 41.88 USD
    with time_machine.travel(at(14), tick=False):
        b2b = staff_invoice(
            lines=[
                DraftLineSpec(sku="MUG", quantity=1),
                DraftLineSpec(description="Fee", quantity=1, unit_price=Decimal("100.00"), tax_rate=Decimal("0.2")),
            ],
            allow_partial=True,
        )  # 110.00 + 22.00 VAT = 132.00, placed at finalize
    with time_machine.travel(at(15), tick=False):
        succeed(b2b, Decimal("50.00"))
    with time_machine.travel(at(16), tick=False):
        declined = place_order(product=tee, quantity=1)
        webhook(attempt_for(declined, payment_method="pm_card_declined"), "payment.failed", failure_reason="no")
    with time_machine.travel(at(17), tick=False):
        late = place_order(product=tee, quantity=1)  # 25.00 + 4.90 + 5.98 = 35.88
        attempt = attempt_for(late)
        order_cancel(order_id=late.pk, reason="changed their mind")
        webhook(attempt)  # success for a cancelled order: refund flagged
    _paid_storefront_order(at(0, 0, DAY + timedelta(days=1)), tee, 1)  # the day after
    return {"orders": (a, b, c), "b2b": b2b}


EXPECTED = {
    "date": "2026-03-10",
    "orders": {
        "count": 4,
        "by_currency": {"EUR": {"count": 3, "revenue": "251.88"}, "USD": {"count": 1, "revenue": "41.88"}},
    },
    "revenue": {"EUR": "251.88", "USD": "41.88"},
    "credit_notes": {"count": 0, "ranges": [], "by_currency": {}},
    "net_revenue": {"EUR": "251.88", "USD": "41.88"},
    "invoices": {"count": 4, "ranges": [{"series": "INV", "count": 4, "first": 2, "last": 5}]},
    "payments": {
        "succeeded": {"count": 4, "by_currency": {"EUR": "169.88", "USD": "41.88"}},
        "failed": {"count": 1},
    },
    "refunds_flagged": {"count": 1, "by_currency": {"EUR": "35.88"}},
    "top_products": [
        {"sku": "TEE", "name": "Tee", "units": 3, "revenue": "75.00", "currency": "EUR"},
        {"sku": "MUG", "name": "Mug", "units": 3, "revenue": "30.00", "currency": "EUR"},
        {"sku": "HAT", "name": "Hat", "units": 1, "revenue": "30.00", "currency": "USD"},
    ],
}


def test_the_report_has_the_right_figures_for_a_seeded_day(seeded_day):
    assert sales_report_build(day=DAY) == EXPECTED
    empty = sales_report_build(day=DAY - timedelta(days=5))
    assert (empty["orders"]["count"], empty["invoices"]["ranges"], empty["top_products"]) == (0, [], [])


def test_it_is_emailed_once_as_html_with_a_plain_text_part_even_when_run_twice(seeded_day, settings):
    settings.STAFF_EMAILS = ["boss@example.com", "ops@example.com"]
    with time_machine.travel(at(6, 5, DAY + timedelta(days=1)), tick=False):
        assert send_daily_sales_report.apply().get() == "2026-03-10"
        assert send_daily_sales_report.apply().get() == "2026-03-10"  # the beat fires again: no second mail

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["boss@example.com", "ops@example.com"]
    assert message.subject == "Sales report 2026-03-10: 4 orders, 251.88 EUR, 41.88 USD"
    assert "Orders placed: 4" in message.body
    assert "INV: 2 to 5 (4)" in message.body
    assert "Payments failed: 1" in message.body
    assert "Refunds flagged: 1, 35.88 EUR" in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert '<td align="right" data-testid="revenue-EUR">251.88 EUR</td>' in html
    report = SalesReport.objects.get(date=DAY)
    assert report.sent_at is not None
    assert report.data == EXPECTED
    assert report.recipients == ["boss@example.com", "ops@example.com"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_for_one_day_send_one_mail():
    _paid_storefront_order(at(10), ProductFactory(price=Decimal("60.00")), 1)

    results = run_in_threads(lambda i: sales_report_send(day=DAY), 6)

    assert all(isinstance(r, SalesReport) for r in results), results
    assert len(mail.outbox) == 1
    assert SalesReport.objects.filter(date=DAY).count() == 1


def test_beat_runs_the_report_at_the_configured_hour():
    entry = django_settings.CELERY_BEAT_SCHEDULE["sales-report"]
    assert entry["task"] == "invoicing.send_daily_sales_report"
    assert entry["schedule"] == crontab(hour=django_settings.SALES_REPORT_HOUR, minute=5)


def test_revenue_by_day_fills_the_30_days_with_zeroes(seeded_day):
    series = sales_revenue_by_day(last_day=DAY, days=30)
    assert set(series) == {"EUR", "USD"}
    assert len(series["EUR"]) == 30
    assert series["EUR"][-1] == (DAY, Decimal("251.88"))
    assert series["EUR"][-2] == (DAY - timedelta(days=1), Decimal("17.88"))  # 10.00 + 4.90 + 2.98 VAT
    assert series["EUR"][0] == (DAY - timedelta(days=29), Decimal("0.00"))


def test_the_admin_shows_any_day_with_a_svg_revenue_chart(seeded_day, client):
    client.force_login(StaffFactory(is_superuser=True))

    page = client.get(f"/admin/invoicing/salesreport/day/?date={DAY.isoformat()}")

    assert page.status_code == 200
    html = page.content.decode()
    assert "Sales report for 2026-03-10" in html
    assert "251.88 EUR" in html
    assert 'data-testid="revenue-chart-EUR"' in html
    assert html.count('<rect class="bar"') == 60  # 30 days x 2 currencies
    assert 'data-day="2026-03-10" data-amount="251.88"' in html
    # nothing loaded from a CDN (a bare "cdn" can occur in the page's random CSRF token)
    assert not re.search(r"(src|href)=[\"'][^\"']*//[^\"']*cdn", html, re.IGNORECASE)
    assert client.get("/admin/invoicing/salesreport/").status_code == 200

    sent = client.post(f"/admin/invoicing/salesreport/day/?date={DAY.isoformat()}")
    assert sent.status_code == 302
    client.post(f"/admin/invoicing/salesreport/day/?date={DAY.isoformat()}")
    assert len(mail.outbox) == 1


def test_customers_cannot_see_the_report(client):
    client.force_login(UserFactory())
    assert client.get("/admin/invoicing/salesreport/day/").status_code == 302  # to the admin login
