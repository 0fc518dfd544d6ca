"""Credit notes over the API: list, detail and PDF for the owner and staff; another
customer gets 404; the invoice shows its credit notes and the amount refunded."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from invoicing.models import CreditNote, CreditNoteDocument
from invoicing.services import FaultInjector, credit_notes_number_due, invoices_number_due
from invoicing.tests.helpers import paid_order, refund_succeeded

pytestmark = pytest.mark.django_db

NO_FAULT = FaultInjector(rate=0)
NOT_FOUND = {"error": {"code": "not_found", "message": "Not found.", "details": {}}}
# The design's credit note representation (DESIGN.md; more fields are allowed).
CREDIT_NOTE_FIELDS = {
    "id", "credit_note_number", "series", "display_number", "status", "invoice_id", "order_id", "currency",
    "lines", "subtotal", "tax", "total", "issued_at",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    for hook in (
        "invoice_enqueue_pdf",
        "invoice_enqueue_pdfs",
        "credit_note_enqueue_pdf",
        "credit_note_enqueue_pdfs",
        "invoice_enqueue_numbering",
    ):
        monkeypatch.setattr(f"invoicing.services.{hook}", lambda **kwargs: None)
    monkeypatch.setattr("invoicing.services.credit_note_enqueue_numbering", lambda **kwargs: None)


def _issued_note(user, amount="6.00", lines=None) -> CreditNote:
    order = paid_order(user=user, products=[ProductFactory(price=Decimal("25.00"), on_hand=10)])
    note = refund_succeeded(order=order, amount=amount, lines=lines)
    invoices_number_due(fault=NO_FAULT)
    credit_notes_number_due(fault=NO_FAULT)
    note.refresh_from_db()
    return note


def test_the_owner_reads_their_credit_note_with_the_design_fields(shopper_client, user):
    note = _issued_note(user)

    body = shopper_client.get(f"/api/v1/credit-notes/{note.pk}/").json()

    assert set(body) >= CREDIT_NOTE_FIELDS
    assert (body["credit_note_number"], body["series"], body["display_number"], body["status"]) == (
        1, "CN", "CN-1", "issued"
    )  # fmt: skip
    assert (body["invoice_id"], body["order_id"], body["refund_id"]) == (note.invoice_id, note.order_id, note.refund_id)
    assert body["invoice_display_number"] == "INV-1"
    assert (body["subtotal"], body["tax"], body["total"]) == ("5.00", "1.00", "6.00")
    assert body["tax_breakdown"] == [{"rate": "0.2000", "net": "5.00", "tax": "1.00"}]
    assert body["lines"] == [
        {
            "sku": "", "description": "Refund (VAT 20%)", "quantity": 1, "unit_price": "5.00",
            "tax_rate": "0.2000", "line_total": "5.00", "amount": "6.00",
        }
    ]  # fmt: skip
    assert body["pdf_url"] == f"/api/v1/credit-notes/{note.pk}/pdf/"
    assert body["reason"] == "Damaged in transit"
    assert body["buyer"]["name"] == "Ada Shopper"


def test_another_customers_credit_note_is_404_everywhere_and_absent_from_their_list(shopper_client):
    theirs = _issued_note(UserFactory())

    for url in (f"/api/v1/credit-notes/{theirs.pk}/", f"/api/v1/credit-notes/{theirs.pk}/pdf/"):
        response = shopper_client.get(url)
        assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert shopper_client.get("/api/v1/credit-notes/").json()["count"] == 0


def test_the_list_is_the_callers_own_and_staff_see_every_one_with_filters(shopper_client, user, client_for):
    mine = _issued_note(user)
    other = _issued_note(UserFactory(), amount="3.00")
    staff = StaffFactory()

    own = shopper_client.get("/api/v1/credit-notes/").json()
    everyone = client_for(staff).get("/api/v1/credit-notes/").json()

    assert (own["count"], [r["id"] for r in own["results"]]) == (1, [mine.pk])
    assert (everyone["count"], [r["id"] for r in everyone["results"]]) == (2, [other.pk, mine.pk])
    staff_client = client_for(staff)
    assert [r["id"] for r in staff_client.get(f"/api/v1/credit-notes/?search=CN-{other.number}").json()["results"]] == [
        other.pk
    ]
    assert [
        r["id"] for r in staff_client.get(f"/api/v1/credit-notes/?invoice={mine.invoice_id}").json()["results"]
    ] == [mine.pk]
    assert staff_client.get("/api/v1/credit-notes/?status=pending").json()["count"] == 0
    bad = staff_client.get("/api/v1/credit-notes/?status=nope")
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "validation_error")
    assert "status" in bad.json()["error"]["details"]


def test_staff_with_only_view_creditnote_see_every_credit_note(client_for):
    note = _issued_note(UserFactory())
    clerk = UserFactory(is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_creditnote"))

    assert [r["id"] for r in client_for(clerk).get("/api/v1/credit-notes/").json()["results"]] == [note.pk]


def test_the_pdf_is_409_while_pending_then_a_stored_pdf_naming_both_numbers(shopper_client, user):
    order = paid_order(user=user)
    note = refund_succeeded(order=order, amount="2.40")

    pending = shopper_client.get(f"/api/v1/credit-notes/{note.pk}/pdf/")
    assert (pending.status_code, pending.json()["error"]["code"]) == (409, "credit_note_not_issued")
    assert not CreditNoteDocument.objects.exists()

    invoices_number_due(fault=NO_FAULT)
    credit_notes_number_due(fault=NO_FAULT)
    response = shopper_client.get(f"/api/v1/credit-notes/{note.pk}/pdf/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="credit-note-CN-1.pdf"'
    pdf = response.content
    assert pdf.startswith(b"%PDF")
    assert CreditNoteDocument.objects.get(credit_note=note).size == len(pdf)
    import io

    from pypdf import PdfReader

    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "CREDIT NOTE" in text
    assert "CN-1" in text
    assert "INV-1" in text
    assert "-2.40 EUR" in text


def test_the_invoice_shows_its_credit_notes_and_the_amount_refunded(shopper_client, user):
    note = _issued_note(user, amount="6.00")
    second = refund_succeeded(order=note.order, amount="1.50")  # pending

    body = shopper_client.get(f"/api/v1/invoices/{note.invoice_id}/").json()
    listed = shopper_client.get("/api/v1/invoices/").json()["results"][0]

    assert body["amount_refunded"] == listed["amount_refunded"] == "7.50"
    assert body["credit_notes"] == listed["credit_notes"]
    assert [(c["id"], c["display_number"], c["status"], c["total"]) for c in body["credit_notes"]] == [
        (note.pk, "CN-1", "issued", "6.00"),
        (second.pk, None, "pending", "1.50"),
    ]
    assert body["credit_notes"][0]["pdf_url"] == f"/api/v1/credit-notes/{note.pk}/pdf/"
    assert body["credit_notes"][0]["issued_at"].endswith("Z")


def test_the_invoice_pdf_is_rendered_again_with_its_credit_notes_and_the_amount_refunded(user):
    import io

    from pypdf import PdfReader

    from invoicing.services import invoice_pdf_store

    order = paid_order(user=user)
    invoices_number_due(fault=NO_FAULT)
    before = invoice_pdf_store(invoice_id=order.invoice.pk)
    refund_succeeded(order=order, amount="4.00")
    credit_notes_number_due(fault=NO_FAULT)

    after = invoice_pdf_store(invoice_id=order.invoice.pk)

    assert after.fingerprint != before.fingerprint
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(bytes(after.pdf))).pages)
    assert "Amount refunded 4.00 EUR" in text
    assert "CN-1 (-4.00 EUR)" in text


def test_the_accounting_export_carries_the_amount_refunded_and_the_credit_note_numbers(user, client_for):
    import csv
    import io

    note = _issued_note(user, amount="6.00")
    refund_succeeded(order=note.order, amount="1.50")  # pending

    response = client_for(StaffFactory()).get("/api/v1/invoices/export.csv")

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["invoice"], r["amount_refunded"], r["credit_notes"]) for r in rows] == [
        ("INV-1", "7.50", "CN-1; pending")
    ]
