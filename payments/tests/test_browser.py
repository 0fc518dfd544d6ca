"""The shopper's whole journey in a real Chromium, against the live server and a real
Celery worker: catalog, cart, checkout, the pay step, the simulated provider's page, and
back on the order confirmation: paid, invoice "Pending", Refresh, the invoice number."""

import os

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop

import re
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from playwright.sync_api import expect

from common.tests.factories import ProductFactory, UserFactory
from invoicing.models import Invoice, InvoiceSequence
from orders.models import Order, OrderStatus
from payments.models import PaymentAttempt, PaymentStatus

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("worker_settled"),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class SequenceHold:
    """Holds the invoice sequence row locked from another connection, as a long numbering
    transaction would: the worker's numbering waits, so "Pending" is really seen; then
    releasing it lets the number through. Deterministic, with no failure injection."""

    def __init__(self) -> None:
        db = connection.settings_dict
        self.conn = psycopg.connect(
            dbname=db["NAME"], user=db["USER"] or "root", host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432
        )
        self.conn.execute(
            "SELECT next_value FROM invoicing_invoicesequence WHERE series = %s FOR UPDATE", [settings.INVOICE_SERIES]
        )

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.commit()
            self.conn.close()


def test_shopper_pays_on_the_provider_page_and_gets_an_invoice_number(chromium, live_server, payments_worker, relay_up):
    ProductFactory(sku="MUG-001", name="Enamel mug", price=Decimal("12.50"), on_hand=5)
    UserFactory(username="payer")  # password "pass-word-123"
    InvoiceSequence.objects.get_or_create(series=settings.INVOICE_SERIES)
    hold = SequenceHold()
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and problems.append(f"console: {msg.text}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status} {r.url}"))
    try:
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill("payer")
        page.get_by_label("Password").fill("pass-word-123")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("Hi, payer")).to_be_visible()

        # Catalog -> cart -> checkout.
        page.goto("/")
        page.locator("li.card[data-sku='MUG-001']").get_by_role("button", name="Add to cart").click()
        expect(page).to_have_url(re.compile(r"/cart/$"))
        page.get_by_role("link", name="Checkout").click()
        for label, value in [("Full name", "Ada Lovelace"), ("Address", "12 Analytical Row"), ("City", "London"),
                             ("Postal code", "N1 7AA")]:  # fmt: skip
            page.get_by_label(label, exact=True).fill(value)
        page.get_by_label("Country", exact=True).select_option("GB")
        page.get_by_role("button", name="Place order").click()

        # The pay step, then the provider's hosted page.
        expect(page).to_have_url(re.compile(r"/orders/\d+/pay/$"))
        order = Order.objects.get()
        page.locator("#pay-button").click()
        expect(page).to_have_url(re.compile(r"/payments/simulated/sim_pi_[0-9a-f]+/$"))
        expect(page.get_by_test_id("provider-amount")).to_have_text(f"{order.total} EUR")
        page.get_by_label(re.compile("pm_card_success")).check()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "payments-provider-page.png"), full_page=True)
        page.locator("#provider-pay").click()

        # Back on the confirmation: paid once the webhook arrives (the page updates itself).
        expect(page).to_have_url(re.compile(rf"/orders/{order.pk}/$"))
        # The page polls with backoff (2 s, then x1.5): a loaded machine needs more than 5 s.
        expect(page.get_by_test_id("payment-status")).to_have_text("Paid", timeout=30_000)
        expect(page.get_by_test_id("order-status")).to_have_text("Paid")
        expect(page.get_by_test_id("invoice-number")).to_have_text("Pending")
        page.screenshot(path=str(ARTIFACTS / "payments-confirmation-pending.png"), full_page=True)

        # The number comes through; Refresh shows it.
        hold.release()
        page.locator("#invoice-refresh").click()
        expect(page.get_by_test_id("invoice-number")).to_have_text(re.compile(r"^INV-\d+$"))
        shown = page.get_by_test_id("invoice-number").inner_text()
        page.screenshot(path=str(ARTIFACTS / "payments-confirmation-numbered.png"), full_page=True)
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "payments-browser-failure.png"), full_page=True)
        raise
    finally:
        hold.release()
        context.close()

    invoice = Invoice.objects.get(order=order)
    assert shown == f"INV-{invoice.number}" == "INV-1"
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert list(PaymentAttempt.objects.values_list("status", "payment_method")) == [
        (PaymentStatus.SUCCEEDED, "pm_card_success")
    ]
    assert problems == []
