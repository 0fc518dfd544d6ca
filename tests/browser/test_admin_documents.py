"""The admin's document pages in Chromium at 1280 and 390 px, with realistic data (several
lines at two rates, four payment attempts, long errors and references, refunds and credit
notes): no page wider than its window (at 1280 no list or inline scrolling inside its box
either), axe-core with no serious or critical violation, in the light and the dark theme,
screenshots in test-artifacts/. And "Retry numbering now" clicked under the real CSP."""

import os

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from common.models import AuditLogEntry
from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import broker_purge, place_order, queued_tasks
from invoicing.models import CreditNote, Invoice
from invoicing.services import FaultInjector, credit_notes_number_due, invoice_assign_number
from invoicing.tests.helpers import paid_order, refund_succeeded
from orders.services import DraftLineSpec, draft_order_create
from payments.models import PaymentAttempt, Refund
from tests.browser.test_accessibility import AXE, _axe_problems
from tests.browser.test_admin_layout import LONG_ERROR, _overflow

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WIDTHS = {"desktop": 1280, "phone": 390}
PASSWORD = "pass-word-123"  # the factories'
NO_FAULT = FaultInjector(rate=0)


@pytest.fixture
def documents(db, monkeypatch) -> dict[str, Any]:
    for hook in ("invoice_enqueue_pdf", "credit_note_enqueue_pdf", "invoice_enqueue_numbering"):
        monkeypatch.setattr(f"invoicing.services.{hook}", lambda **kwargs: None)
    monkeypatch.setattr("invoicing.services.credit_note_enqueue_numbering", lambda **kwargs: None)
    StaffFactory(username="boss", is_superuser=True)
    customer = UserFactory(username="margaret.hamilton-with-a-long-username")
    lamp = ProductFactory(sku="LMP-009-WALNUT-EDITION", name="Dimmable LED desk lamp with a walnut base", on_hand=500)
    book = ProductFactory(
        sku="BOOK-REDUCED-RATE-0042",
        name="A field guide to the mushrooms of Europe (hardcover, 2nd edition)",
        tax_rate=Decimal("0.0550"),
        on_hand=500,
    )
    # An order with four payment attempts: three declined, one processing.
    order = place_order(user=customer, product=lamp, quantity=3)
    for n, status in enumerate(["failed", "failed", "failed", "processing"]):
        attempt = PaymentAttempt.objects.create(
            order=order,
            amount=order.total,
            currency=order.currency,
            provider_reference=f"sim_pi_3Q4c9d2e1f0a9b8c7d6e5f4a{n}",
            payment_method="pm_card_declined" if status == "failed" else "pm_card_slow",
            redirect_url=f"http://127.0.0.1:8000/payments/simulated/sim_pi_3Q4c9d2e1f0a9b8c7d6e5f4a{n}/",
        )
        if status == "failed":
            PaymentAttempt.objects.filter(pk=attempt.pk).update(
                status="failed",
                failure_code="declined",
                failure_reason="Your card was declined by the issuing bank (simulated).",
                completed_at=timezone.now(),
            )
    # Invoices: one issued (two rates), several pending with a long error.
    issued_order = paid_order(user=customer, products=[lamp, book], quantities=[2, 3])
    issued = invoice_assign_number(invoice_id=issued_order.invoice.pk, fault=NO_FAULT)
    pending_orders = [paid_order(user=customer, products=[lamp, book]) for _ in range(4)]
    Invoice.objects.filter(number__isnull=True).update(
        attempts=7, last_error=LONG_ERROR, last_attempt_at=timezone.now()
    )
    pending = Invoice.objects.get(order=pending_orders[0])
    # Refunds and credit notes: one numbered, one pending with a long error.
    lines = list(issued_order.lines.all())
    numbered_note = refund_succeeded(
        order=issued_order,
        lines=[(lines[0], 1, str(lines[0].unit_price * Decimal("1.2")))],
        reason="Arrived with a cracked base; customer keeps the shade and the cable (photos in the ticket)",
    )
    credit_notes_number_due(fault=NO_FAULT)
    pending_note = refund_succeeded(order=issued_order, amount="3.00", reason="Late delivery goodwill gesture")
    CreditNote.objects.filter(pk=pending_note.pk).update(attempts=4, last_error=LONG_ERROR)
    draft = draft_order_create(
        customer=customer,
        lines=[
            DraftLineSpec(quantity=2, sku=lamp.sku),
            DraftLineSpec(quantity=10, sku=book.sku),
            DraftLineSpec(
                quantity=1,
                description="Installation and calibration on site, including travel within 50 km",
                unit_price=Decimal("180.00"),
                tax_rate=Decimal("0.2000"),
            ),
            DraftLineSpec(
                quantity=3,
                description="Extended warranty, 3 years (parts and labour)",
                unit_price=Decimal("24.90"),
                tax_rate=Decimal("0.2000"),
            ),
        ],
        actor=None,
        notes="Deliver to the loading dock at the back; ask for the facilities manager.",
    )
    assert Refund.objects.count() == 2
    return {
        "order": order,
        "issued": issued,
        "pending": pending,
        "note": CreditNote.objects.get(pk=numbered_note.pk),
        "pending_note": pending_note,
        "draft": draft,
    }


def _sign_in(page: Page) -> None:
    page.goto("/admin/login/")
    page.get_by_label("Username").fill("boss")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def _pages(d: dict[str, Any]) -> dict[str, str]:
    return {
        "index": "/admin/",
        "invoice-list": "/admin/invoicing/invoice/",
        "invoice-pending": f"/admin/invoicing/invoice/{d['pending'].pk}/change/",
        "invoice-issued": f"/admin/invoicing/invoice/{d['issued'].pk}/change/",
        "order-change": f"/admin/orders/order/{d['order'].pk}/change/",
        "draft-change": f"/admin/orders/draftorder/{d['draft'].pk}/change/",
        "creditnote-list": "/admin/invoicing/creditnote/",
        "creditnote-change": f"/admin/invoicing/creditnote/{d['note'].pk}/change/",
        "creditnote-pending": f"/admin/invoicing/creditnote/{d['pending_note'].pk}/change/",
        "refund-list": "/admin/payments/refund/",
        "sales-report": "/admin/invoicing/salesreport/day/",
        "sales-report-list": "/admin/invoicing/salesreport/",
    }


def _check(page: Page, pages: dict[str, str], *, tag: str, desktop: bool, artifacts: Path) -> dict[str, Any]:
    failures = {}
    for name, path in pages.items():
        response = page.goto(path)
        assert response is not None
        assert response.status == 200, (name, response.status)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(artifacts / f"admin-doc-{name}-{tag}.png"), full_page=True)
        overflow = _overflow(page, inner_too=desktop)
        problems = _axe_problems(page, AXE.read_text())
        if overflow or problems:
            failures[name] = {"overflow": overflow, "axe": problems}
    return failures


@pytest.mark.parametrize("device", list(WIDTHS))
def test_admin_document_pages_fit_and_pass_axe(documents, new_context, artifacts_dir: Path, device: str):
    width = WIDTHS[device]
    page = new_context(viewport={"width": width, "height": 900}, bypass_csp=True).new_page()  # axe's script
    _sign_in(page)

    failures = _check(page, _pages(documents), tag=str(width), desktop=device == "desktop", artifacts=artifacts_dir)

    assert failures == {}, json.dumps(failures, indent=2)


def test_admin_dark_theme_keeps_contrast(documents, new_context, artifacts_dir: Path):
    page = new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True, color_scheme="dark").new_page()
    _sign_in(page)
    pages = {k: v for k, v in _pages(documents).items() if k in {"index", "invoice-list", "invoice-issued"}}

    failures = _check(page, pages, tag="1280-dark", desktop=True, artifacts=artifacts_dir)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")

    assert failures == {}, json.dumps(failures, indent=2)
    assert background == "rgb(18, 18, 18)"  # Django's dark body: the theme follows the system


def test_retry_numbering_button_works_under_the_csp(documents, new_context, page_problems, artifacts_dir: Path):
    broker_purge()
    try:
        page = new_context(viewport={"width": 1280, "height": 900}).new_page()  # the real CSP
        _sign_in(page)
        page.goto(f"/admin/invoicing/invoice/{documents['pending'].pk}/change/")
        expect(page.get_by_text(LONG_ERROR)).to_be_visible()  # the whole error on the page
        expect(page.locator(".field-seller address")).to_contain_text("VAT ID FR00123456789")
        expect(page.locator(".field-tax_breakdown_display")).to_contain_text("VAT 5.5 %")
        expect(page.get_by_role("button", name="Save")).to_have_count(0)

        page.get_by_role("button", name="Retry numbering now").click()

        expect(page.locator(".messagelist")).to_contain_text("Numbering of this invoice enqueued now")
        page.screenshot(path=str(artifacts_dir / "admin-doc-retry-done-1280.png"), full_page=True)
        assert queued_tasks(name="invoicing.assign_invoice_number") == [
            ("invoicing.assign_invoice_number", [documents["pending"].pk])
        ]
        assert AuditLogEntry.objects.filter(action="invoice.retry_now").count() == 1
        assert page_problems.errors == []
    finally:
        broker_purge()
