"""Invoice PDFs: rendered by WeasyPrint, stored when issued (by a worker), served by the
API, rendered again when the status or the amounts paid change (VOID watermark)."""

import io
import math
import subprocess
import sys
import uuid
from decimal import Decimal

import pypdf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.money import money_round
from common.tests.factories import StaffFactory, UserFactory
from common.tests.helpers import ROOT, WorkerProcess, wait_until, worker_env
from flows.draft_finalize import draft_order_finalize
from invoicing import pdf as pdf_module
from invoicing.models import Invoice, InvoiceDocument
from invoicing.services import InvoiceNotIssued, invoice_pdf_store, invoice_void
from invoicing.tasks import render_invoice_pdf
from invoicing.tests.docs_helpers import staff_invoice, succeed
from orders.services import DraftLineSpec, draft_order_create

pytestmark = pytest.mark.django_db


def _text(document: InvoiceDocument | bytes) -> tuple[str, int]:
    data = document if isinstance(document, bytes) else bytes(document.pdf)
    assert data.startswith(b"%PDF-")
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages), len(reader.pages)


def _lines(n: int) -> list[DraftLineSpec]:
    return [
        DraftLineSpec(
            description=f"Item {i} of a long order",
            quantity=i % 5 + 1,
            unit_price=Decimal("19.99"),
            tax_rate=Decimal("0.2000") if i % 3 else Decimal("0.0550"),
        )
        for i in range(n)
    ]


def test_the_worker_task_renders_and_stores_an_issued_invoice_as_an_a4_pdf():
    invoice = staff_invoice(lines=_lines(3), notes="Purchase order 77")

    render_invoice_pdf.apply((invoice.pk,))

    document = InvoiceDocument.objects.get(invoice=invoice)
    text, pages = _text(document)
    assert (pages, document.page_count, document.size) == (1, 1, len(bytes(document.pdf)))
    box = pypdf.PdfReader(io.BytesIO(bytes(document.pdf))).pages[0].mediabox
    assert (round(float(box.width) * 25.4 / 72), round(float(box.height) * 25.4 / 72)) == (210, 297)  # A4, mm
    assert invoice.display_number in text
    for amount in (invoice.subtotal, invoice.tax, invoice.total):
        assert f"{amount} EUR" in text
    assert "Amount paid 0.00 EUR" in text
    assert f"Amount due {invoice.total} EUR" in text
    assert f"Issue date: {invoice.issue_date:%Y-%m-%d}" in text
    assert f"Due date: {invoice.due_date:%Y-%m-%d}" in text
    assert "Demo Shop Ltd" in text  # seller, from settings
    assert invoice.order.user.username in text  # buyer
    assert "Purchase order 77" in text
    assert "VOID" not in text


@pytest.mark.parametrize("count", [1, 24, 25, 26, 60, 100])
def test_one_page_per_about_25_lines(count):
    invoice = staff_invoice(lines=_lines(count))
    text, pages = _text(invoice_pdf_store(invoice_id=invoice.pk))
    assert math.ceil(count / 25) <= pages <= math.ceil(count / 25) + 1
    assert f"Item {count - 1} of a long order" in text
    assert f"Page {pages} of {pages}" in text


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=9),
            st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999.99"), places=2),
            st.sampled_from([Decimal("0.0550"), Decimal("0.1000"), Decimal("0.2000")]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_pdf_amounts_are_the_exact_decimals(lines):
    specs = [
        DraftLineSpec(description=f"L{i}", quantity=q, unit_price=p, tax_rate=r) for i, (q, p, r) in enumerate(lines)
    ]
    invoice = staff_invoice(lines=specs)
    text, _ = _text(invoice_pdf_store(invoice_id=invoice.pk))
    for row in invoice.tax_rows:
        assert f"{row['net']} EUR {row['tax']} EUR" in text
        assert row["tax"] == money_round(row["net"] * row["rate"], "EUR")
    for line in invoice.lines.all():
        assert f" {line.unit_price} " in text
        assert str(line.line_total) in text
    assert f"Total {invoice.total} EUR" in text


def test_void_invoice_pdf_has_the_void_watermark_and_keeps_its_number():
    invoice = staff_invoice()
    before = invoice_pdf_store(invoice_id=invoice.pk)
    invoice_void(invoice_id=invoice.pk, reason="duplicate")

    after = invoice_pdf_store(invoice_id=invoice.pk)

    text, _ = _text(after)
    assert after.fingerprint != before.fingerprint
    assert "VOID" in text
    assert invoice.display_number in text
    assert "duplicate" in text
    assert "Amount due 0.00 EUR" in text


def test_pdf_shows_amounts_paid_after_a_payment():
    invoice = staff_invoice(allow_partial=True)
    invoice_pdf_store(invoice_id=invoice.pk)
    succeed(invoice, Decimal("20.00"))

    text, _ = _text(invoice_pdf_store(invoice_id=invoice.pk))

    assert "Amount paid 20.00 EUR" in text
    assert "Amount due 100.00 EUR" in text
    assert "Partially paid".upper() in text.upper()


def test_a_pending_invoice_has_no_pdf_yet(client_for):
    invoice = staff_invoice(issue=False)
    with pytest.raises(InvoiceNotIssued):
        invoice_pdf_store(invoice_id=invoice.pk)
    render_invoice_pdf.apply((invoice.pk,))  # the task has nothing to do
    assert not InvoiceDocument.objects.exists()

    response = client_for(invoice.order.user).get(f"/api/v1/invoices/{invoice.pk}/pdf/")

    assert response.status_code == 409
    body = response.json()
    assert body["error"]["code"] == "invoice_not_issued"
    assert "pending" in body["error"]["message"]


def test_the_endpoint_serves_the_stored_pdf_to_owner_and_staff_only(client_for, api_client, monkeypatch):
    invoice = staff_invoice()
    stored = invoice_pdf_store(invoice_id=invoice.pk)

    def must_not_render(**kwargs):
        raise AssertionError("the stored PDF is served, not rendered again")

    monkeypatch.setattr(pdf_module, "render_invoice_pdf_bytes", must_not_render)
    for user in (invoice.order.user, StaffFactory()):
        response = client_for(user).get(f"/api/v1/invoices/{invoice.pk}/pdf/", HTTP_ACCEPT="application/pdf")
        assert response.status_code == 200
        assert response["Content-Type"] == "application/pdf"
        assert f'filename="invoice-{invoice.display_number}.pdf"' in response["Content-Disposition"]
        assert response.content == bytes(stored.pdf)

    assert client_for(UserFactory()).get(f"/api/v1/invoices/{invoice.pk}/pdf/").status_code == 404
    assert api_client.get(f"/api/v1/invoices/{invoice.pk}/pdf/").status_code == 401


def test_the_endpoint_renders_a_missing_pdf_on_demand(client_for):
    invoice = staff_invoice()
    assert not InvoiceDocument.objects.filter(invoice=invoice).exists()

    response = client_for(invoice.order.user).get(f"/api/v1/invoices/{invoice.pk}/pdf/")

    assert response.status_code == 200
    text, _ = _text(response.content)
    assert invoice.display_number in text
    assert InvoiceDocument.objects.filter(invoice=invoice).exists()


def test_pdf_download_links_on_the_order_page_and_in_the_admin(client):
    invoice = staff_invoice()
    customer = invoice.order.user
    client.force_login(customer)
    page = client.get(f"/orders/{invoice.order_id}/").content.decode()
    assert f'href="/api/v1/invoices/{invoice.pk}/pdf/"' in page

    client.force_login(StaffFactory(is_superuser=True))
    admin_page = client.get(f"/admin/invoicing/invoice/{invoice.pk}/change/").content.decode()
    assert f"/api/v1/invoices/{invoice.pk}/pdf/" in admin_page


# --- A real worker renders the PDF when the invoice is issued ----------------------------------


class DocumentsWorker(WorkerProcess):
    """The shared worker helper, consuming the documents queue too (as the Procfile does)."""

    def start(self) -> "DocumentsWorker":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--loglevel=INFO",
            "-Q",
            "celery,documents",
        ]
        command += ["--concurrency=2", "--pool=prefork", "--prefetch-multiplier=1", "-Ofair"]
        command += ["--without-gossip", "--without-mingle", "--hostname", f"docs-{uuid.uuid4().hex[:6]}@%h"]
        self.proc = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_numbers_the_invoice_and_then_renders_its_pdf():
    worker = DocumentsWorker(worker_env(INVOICE_FAILURE_RATE="0.5")).start()
    try:
        draft = draft_order_create(customer=UserFactory(), lines=_lines(30), actor=StaffFactory())
        finalized = draft_order_finalize(draft_id=draft.pk)  # commits: numbering enqueued
        invoice = Invoice.objects.get(order_id=finalized.order_id)

        wait_until(
            lambda: InvoiceDocument.objects.filter(invoice=invoice).exists(),
            timeout=90,
            message=f"the PDF of invoice {invoice.pk}; worker log:\n{worker.log()[-3000:]}",
        )
    finally:
        worker.stop()

    invoice.refresh_from_db()
    assert invoice.status == "issued"
    text, pages = _text(InvoiceDocument.objects.get(invoice=invoice))
    assert invoice.display_number in text
    assert pages == 2
