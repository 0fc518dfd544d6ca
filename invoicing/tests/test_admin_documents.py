"""Invoices and credit notes as staff read them in the admin: parties as address blocks,
rates as "20 %", no Save on a document's page, "Retry numbering now" as a button on a
pending one (POST, CSRF, permission, audited, really enqueued), the sales report on today,
and empty lists that say why they are empty."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from common.models import AuditLogEntry
from common.tests.factories import ProductFactory, StaffFactory
from common.tests.helpers import broker_purge, queued_tasks
from invoicing.models import CreditNote, Invoice
from invoicing.services import FaultInjector, credit_notes_number_due, invoice_assign_number, invoices_number_due
from invoicing.tests.helpers import paid_order, refund_succeeded
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db

NBSP = "\u00a0"
NO_FAULT = FaultInjector(rate=0)
INVOICE_TASK = "invoicing.assign_invoice_number"
CREDIT_NOTE_TASK = "invoicing.assign_credit_note_number"


@pytest.fixture
def admin_client(client):
    client.force_login(StaffFactory(is_superuser=True))
    return client


@pytest.fixture
def broker():
    broker_purge()
    yield
    broker_purge()


@pytest.fixture
def quiet(monkeypatch):
    """Documents are numbered by the test, not by enqueued tasks."""
    for hook in (
        "invoice_enqueue_pdf",
        "invoice_enqueue_pdfs",
        "credit_note_enqueue_pdf",
        "credit_note_enqueue_pdfs",
        "invoice_enqueue_numbering",
    ):
        monkeypatch.setattr(f"invoicing.services.{hook}", lambda **kwargs: None)
    monkeypatch.setattr("invoicing.services.credit_note_enqueue_numbering", lambda **kwargs: None)


def _page(client: Client, name: str, pk: int) -> str:
    response = client.get(reverse(f"admin:invoicing_{name}_change", args=[pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_an_issued_invoice_page_shows_parties_as_addresses_rates_in_percent_and_no_save(admin_client, quiet):
    order = paid_order()
    invoice = invoice_assign_number(invoice_id=order.invoice.pk, fault=NO_FAULT)

    html = _page(admin_client, "invoice", invoice.pk)

    assert '<address class="shop-party">Demo Shop Ltd<br>1 Market Street<br>75001 Paris<br>France<br>' in html
    assert "VAT ID FR00123456789" in html
    assert '"name":' not in html
    assert "{&#x27;name" not in html
    billed = invoice.billing_details
    assert f'<address class="shop-party">{billed["name"]}<br>{billed["line1"]}<br>' in html
    assert f"20{NBSP}%" in html  # the line's rate and the tax row
    assert f"VAT 20{NBSP}% on {invoice.tax_rows[0]['net']} EUR" in html
    assert "0.2000" not in html
    assert "20.0000" not in html
    assert "&lt;br&gt;" not in html  # rows and credit notes on separate lines, not an escaped tag
    assert 'name="_save"' not in html
    assert 'name="_continue"' not in html
    assert 'id="retry-numbering"' not in html  # numbered: nothing to retry
    assert 'id="send-invoice"' in html  # the document's own buttons stay


def test_a_document_page_refuses_a_save_post(admin_client, quiet):
    order = paid_order()

    response = admin_client.post(reverse("admin:invoicing_invoice_change", args=[order.invoice.pk]), {})

    assert response.status_code == 403


@pytest.mark.usefixtures("broker")
def test_retry_numbering_button_on_a_pending_invoice_enqueues_it_and_is_audited(admin_client, quiet):
    order = paid_order()
    invoice = Invoice.objects.get(order=order)
    Invoice.objects.filter(pk=invoice.pk).update(last_error="x" * 300, attempts=3)
    before = Invoice.objects.get(pk=invoice.pk).enqueued_at

    html = _page(admin_client, "invoice", invoice.pk)
    url = reverse("admin:invoicing_invoice_retry_numbering", args=[invoice.pk])
    assert f'action="{url}"' in html
    assert 'id="retry-numbering"' in html
    assert "x" * 300 in html  # the whole error on the page (the list shows 60 characters)
    response = admin_client.post(url, follow=True)

    assert response.redirect_chain[-1][0] == reverse("admin:invoicing_invoice_change", args=[invoice.pk])
    assert [str(m) for m in response.context["messages"]] == [
        "Numbering of this invoice enqueued now: the worker gives it the next number in its series "
        "within seconds (reload to see it)."
    ]
    assert queued_tasks(name=INVOICE_TASK) == [(INVOICE_TASK, [invoice.pk])]
    assert Invoice.objects.get(pk=invoice.pk).enqueued_at > before
    entry = AuditLogEntry.objects.get(action="invoice.retry_now", target_id=str(invoice.pk))
    assert entry.details == {"from": "page"}


@pytest.mark.usefixtures("broker")
def test_retry_numbering_of_a_numbered_invoice_enqueues_nothing(admin_client, quiet):
    invoice = invoice_assign_number(invoice_id=paid_order().invoice.pk, fault=NO_FAULT)

    response = admin_client.post(reverse("admin:invoicing_invoice_retry_numbering", args=[invoice.pk]), follow=True)

    assert [str(m) for m in response.context["messages"]] == [
        f"Invoice {invoice.display_number} already has its number: nothing to retry."
    ]
    assert queued_tasks(name=INVOICE_TASK) == []
    assert not AuditLogEntry.objects.filter(action="invoice.retry_now").exists()


@pytest.mark.usefixtures("broker")
def test_retry_numbering_needs_post_csrf_and_the_change_permission(client, quiet):
    invoice = Invoice.objects.get(order=paid_order())
    url = reverse("admin:invoicing_invoice_retry_numbering", args=[invoice.pk])
    staff = StaffFactory()
    checked = Client(enforce_csrf_checks=True)
    checked.force_login(staff)
    viewer = StaffFactory(staff_group=False)
    viewer.user_permissions.add(Permission.objects.get(codename="view_invoice"))
    client.force_login(viewer)

    assert checked.get(url).status_code == 403  # GET changes nothing
    assert checked.post(url).status_code == 403  # no CSRF token
    assert client.post(url).status_code == 403  # may view invoices, not change them
    assert 'id="retry-numbering"' in _page(client, "invoice", invoice.pk)  # shown, refused on POST
    assert queued_tasks(name=INVOICE_TASK) == []
    staff_client = Client()
    staff_client.force_login(staff)  # the staff group: change_invoice
    assert staff_client.post(url).status_code == 302
    assert queued_tasks(name=INVOICE_TASK) == [(INVOICE_TASK, [invoice.pk])]


@pytest.mark.usefixtures("broker")
def test_a_pending_credit_note_has_the_retry_button_and_parties_as_addresses(admin_client, quiet):
    note = refund_succeeded(order=paid_order(), amount="2.00")
    invoices_number_due(fault=NO_FAULT)

    html = _page(admin_client, "creditnote", note.pk)
    url = reverse("admin:invoicing_creditnote_retry_numbering", args=[note.pk])
    assert f'action="{url}"' in html
    assert '<address class="shop-party">Demo Shop Ltd<br>' in html
    assert f"20{NBSP}%" in html
    assert "0.2000" not in html
    assert 'name="_save"' not in html
    response = admin_client.post(url, follow=True)

    assert [str(m) for m in response.context["messages"]] == [
        "Numbering of this credit note enqueued now: the worker gives it the next number in its series "
        "within seconds (reload to see it)."
    ]
    assert queued_tasks(name=CREDIT_NOTE_TASK) == [(CREDIT_NOTE_TASK, [note.pk])]
    assert AuditLogEntry.objects.filter(action="credit_note.retry_now", target_id=str(note.pk)).count() == 1

    credit_notes_number_due(fault=NO_FAULT)
    numbered = _page(admin_client, "creditnote", note.pk)
    assert 'id="retry-numbering"' not in numbered
    assert CreditNote.objects.get(pk=note.pk).number == 1


def test_read_only_pages_have_no_save_button(admin_client, quiet):
    order = paid_order()
    AuditLogEntry.objects.create(action="test.action", target_type="order", target_id=str(order.pk))
    pages = [
        reverse("admin:common_auditlogentry_change", args=[AuditLogEntry.objects.get().pk]),
        reverse("admin:outbox_outboxevent_change", args=[OutboxEvent.objects.first().pk]),
        reverse("admin:invoicing_invoice_change", args=[order.invoice.pk]),
    ]
    for url in pages:
        html = admin_client.get(url).content.decode()
        assert 'name="_save"' not in html, url
        assert 'class="closelink"' in html, url  # Django's "Close" instead


def test_the_sales_report_opens_on_today_and_explains_an_empty_day(admin_client, quiet):
    today = timezone.now().date()

    empty = admin_client.get(reverse("admin:invoicing_salesreport_day")).content.decode()
    paid_order()
    with_order = admin_client.get(reverse("admin:invoicing_salesreport_day")).content.decode()

    assert f"Sales report for {today.isoformat()}" in empty
    assert "No order was placed on" in empty
    assert "so far" in empty
    assert f"Sales report for {today.isoformat()}" in with_order
    assert 'data-testid="report-empty"' not in with_order
    yesterday = (today - timedelta(days=1)).isoformat()
    past = admin_client.get(reverse("admin:invoicing_salesreport_day") + f"?date={yesterday}").content.decode()
    assert f"No order was placed on {yesterday} (UTC day)." in past


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("admin:invoicing_salesreport_changelist", "No report has been e-mailed yet"),
        ("admin:invoicing_invoice_changelist", "No invoice yet: an invoice is created when an order is paid"),
        ("admin:invoicing_creditnote_changelist", "No credit note yet: a credit note is issued when a refund"),
        ("admin:common_auditlogentry_changelist", "No staff action yet"),
        ("admin:payments_refund_changelist", "No refund yet."),
    ],
)
def test_an_empty_list_says_why_and_what_to_do(admin_client, url, text):
    html = admin_client.get(reverse(url)).content.decode()

    assert 'data-testid="admin-empty-state"' in html
    assert text in html


def test_no_pending_invoice_is_good_news_and_a_filter_without_match_says_so(admin_client, quiet):
    invoice = invoice_assign_number(invoice_id=paid_order().invoice.pk, fault=NO_FAULT)
    changelist = reverse("admin:invoicing_invoice_changelist")

    pending = admin_client.get(changelist, {"status__exact": "pending"}).content.decode()
    searched = admin_client.get(changelist, {"q": "999999"}).content.decode()
    listed = admin_client.get(changelist).content.decode()

    assert "No pending invoice: every invoice has its number." in pending
    assert "Show all invoices (1)" in pending
    assert "No invoices match these filters or this search." in searched
    assert 'data-testid="admin-empty-state"' not in listed
    assert invoice.display_number in listed


def test_a_cockpit_link_with_nothing_to_show_is_good_news(admin_client):
    ProductFactory(on_hand=50)

    html = admin_client.get(reverse("admin:inventory_product_changelist"), {"stock": "low"}).content.decode()

    assert "No product is low on stock (LOW_STOCK_THRESHOLD or fewer available)." in html
    assert "Show all products (1)" in html


def test_the_document_pages_sections_show_every_read_only_field(rf):
    from django.contrib import admin

    for model in (Invoice, CreditNote):
        model_admin = admin.site._registry[model]
        shown = {f for _, section in model_admin.get_fieldsets(rf.get("/"), None) for f in section["fields"]}
        assert shown == set(model_admin.readonly_fields) - {"tax_breakdown"}, model  # shown as its display


def test_the_order_page_shows_its_shipping_address_as_an_address(admin_client, quiet):
    order = paid_order()

    html = admin_client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()

    address = order.shipping_address
    assert f'<address class="shop-party">{address["name"]}<br>{address["line1"]}<br>' in html
    assert "&quot;line1&quot;" not in html  # not the stored JSON
    assert 'name="shipping_address"' not in html  # read-only: never a form field
