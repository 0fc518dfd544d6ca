"""Credit notes where staff and shoppers look: the admin (read-only, retry now really
enqueued, the gap audit of both series, the invoice's credit notes), the order page's
invoice block, and the daily sales report netting the refunds of the day."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.db import transaction
from django.urls import reverse

from common.models import AuditLogEntry
from common.tests.factories import ProductFactory, StaffFactory
from common.tests.helpers import broker_purge, queued_tasks
from invoicing.models import CreditNote
from invoicing.selectors import sales_report_build, sales_revenue_by_day
from invoicing.services import FaultInjector, credit_notes_number_due, invoices_number_due
from invoicing.tests.helpers import paid_order, refund_succeeded

pytestmark = pytest.mark.django_db

NO_FAULT = FaultInjector(rate=0)


@pytest.fixture
def admin_client(client):
    client.force_login(StaffFactory(is_superuser=True))
    return client


@pytest.fixture
def quiet(monkeypatch):
    for hook in (
        "invoice_enqueue_pdf",
        "invoice_enqueue_pdfs",
        "credit_note_enqueue_pdf",
        "credit_note_enqueue_pdfs",
        "invoice_enqueue_numbering",
    ):
        monkeypatch.setattr(f"invoicing.services.{hook}", lambda **kwargs: None)
    monkeypatch.setattr("invoicing.services.credit_note_enqueue_numbering", lambda **kwargs: None)


def _numbered(**kwargs) -> CreditNote:
    note = refund_succeeded(order=paid_order(**kwargs), amount="6.00")
    invoices_number_due(fault=NO_FAULT)
    credit_notes_number_due(fault=NO_FAULT)
    note.refresh_from_db()
    return note


def test_the_credit_note_admin_is_a_read_only_document_with_filters(admin_client, quiet):
    note = _numbered()

    changelist = admin_client.get(reverse("admin:invoicing_creditnote_changelist") + "?status__exact=issued")
    change = admin_client.get(reverse("admin:invoicing_creditnote_change", args=[note.pk]))

    assert changelist.status_code == change.status_code == 200
    assert "CN-1" in changelist.content.decode()
    html = change.content.decode()
    assert f'href="/api/v1/credit-notes/{note.pk}/pdf/"' in html
    assert 'name="total"' not in html  # read-only: no input for any field
    assert admin_client.get(reverse("admin:invoicing_creditnote_add")).status_code == 403
    assert admin_client.post(reverse("admin:invoicing_creditnote_delete", args=[note.pk])).status_code == 403
    assert CreditNote.objects.filter(pk=note.pk).exists()


def test_retry_now_enqueues_pending_credit_notes_on_the_broker_and_is_audited(admin_client, quiet):
    broker_purge()
    try:
        issued = _numbered()
        pending = refund_succeeded(order=paid_order(), amount="2.00")

        response = admin_client.post(
            reverse("admin:invoicing_creditnote_changelist"),
            {"action": "retry_now", "_selected_action": [pending.pk, issued.pk]},
            follow=True,
        )

        assert [str(m) for m in response.context["messages"]] == [
            "Enqueued 1 pending credit note(s); skipped 1 already numbered."
        ]
        assert queued_tasks(name="invoicing.assign_credit_note_number") == [
            ("invoicing.assign_credit_note_number", [pending.pk])
        ]
        assert AuditLogEntry.objects.filter(action="credit_note.retry_now", target_id=str(pending.pk)).count() == 1
    finally:
        broker_purge()


def test_the_gap_audit_covers_both_series_and_the_invoice_lists_its_credit_notes(admin_client, quiet):
    note = _numbered()

    audit = admin_client.get(reverse("admin:invoicing_invoice_gap_audit")).content.decode()
    invoice_page = admin_client.get(reverse("admin:invoicing_invoice_change", args=[note.invoice_id])).content.decode()

    assert "Series CN (credit notes)" in audit
    assert "Series INV (invoices)" in audit
    assert audit.count('data-audit="ok"') == 2
    assert 'data-testid="admin-credit-note">CN-1</a>: 6.00 EUR (issued)' in invoice_page
    assert '<span data-testid="admin-amount-refunded">6.00</span>' in invoice_page


def test_the_order_page_invoice_block_lists_the_credit_notes_of_a_refunded_order(client, quiet):
    note = _numbered()
    order = note.order
    order.status = "partially_refunded"  # what the refund-succeeded flow leaves
    order.save(update_fields=["status"])
    second = refund_succeeded(order=order, amount="1.00")
    client.force_login(order.user)

    html = client.get(f"/orders/{order.pk}/invoice-block/").content.decode()

    assert 'data-testid="amount-refunded">7.00 EUR<' in html
    assert 'data-testid="credit-note-number">CN-1<' in html
    assert f'href="/api/v1/credit-notes/{note.pk}/pdf/"' in html
    assert 'data-testid="credit-note-number">Pending<' in html  # the second one, not numbered yet
    assert 'data-pending="true"' in html
    assert second.number is None
    page = client.get(f"/orders/{order.pk}/").content.decode()  # the order page includes the block
    assert 'data-testid="credit-note-number">CN-1<' in page


def test_the_daily_report_and_its_chart_net_the_credit_notes_issued_that_day(quiet):
    day = date(2026, 4, 2)
    product = ProductFactory(price=Decimal("50.00"), on_hand=20)
    with time_machine.travel(datetime(2026, 4, 1, 10, tzinfo=UTC), tick=False):
        earlier = paid_order(products=[product])  # 60.00 the day before
        invoices_number_due(fault=NO_FAULT)
    with time_machine.travel(datetime(2026, 4, 2, 9, tzinfo=UTC), tick=False):
        today = paid_order(products=[product])  # 60.00
        invoices_number_due(fault=NO_FAULT)
        with transaction.atomic():
            refund_succeeded(order=earlier, amount="12.00")  # yesterday's order, refunded today
            refund_succeeded(order=today, amount="6.00")
        credit_notes_number_due(fault=NO_FAULT)

    report = sales_report_build(day=day)
    series = dict(sales_revenue_by_day(last_day=day, days=2)["EUR"])

    assert report["revenue"] == {"EUR": "60.00"}
    assert report["credit_notes"] == {
        "count": 2,
        "ranges": [{"series": "CN", "count": 2, "first": 1, "last": 2}],
        "by_currency": {"EUR": "18.00"},
    }
    assert report["net_revenue"] == {"EUR": "42.00"}
    assert series == {date(2026, 4, 1): Decimal("60.00"), day: Decimal("42.00")}
    assert today.pk != earlier.pk


def test_the_polled_block_of_a_refunded_order_changes_when_its_credit_note_is_numbered(client, quiet):
    """The block's ETag covers its credit notes: a poll made while CN is pending must not
    get a 304 once the number exists (it would keep showing "Pending" until a reload)."""
    order = paid_order()
    invoices_number_due(fault=NO_FAULT)
    refund_succeeded(order=order, amount="6.00")
    order.status = "partially_refunded"
    order.save(update_fields=["status"])
    client.force_login(order.user)
    url = f"/orders/{order.pk}/invoice-block/"
    first = client.get(url)
    etag = first["ETag"]
    assert 'data-testid="credit-note-number">Pending<' in first.content.decode()
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304  # unchanged: 304

    credit_notes_number_due(fault=NO_FAULT)

    after = client.get(url, headers={"If-None-Match": etag})
    assert after.status_code == 200
    assert 'data-testid="credit-note-number">CN-1<' in after.content.decode()
