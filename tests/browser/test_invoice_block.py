"""Issue 3 in a real browser: the order page's invoice block says "Pending" (with a Refresh
button and no error, even while attempts fail) and then shows the number once a worker
issued it, with JavaScript off (Refresh is a plain GET that re-renders the page) and on
(the block refreshes in place, on a click and by polling on its own).

The worker is played by the test: it calls the numbering service itself between the two
observations, so what is under test is the page, not the timing of a queue.
"""

import os

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from common.tests.factories import UserFactory
from common.tests.helpers import place_order
from flows.order_paid import order_place_paid
from invoicing.models import Invoice, InvoiceStatus
from invoicing.services import FaultInjector, InvoiceAttemptFailed, invoice_assign_number
from orders.models import Order
from tests.browser.pages import sign_in, visible_problems

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

POLL_MS = 2000  # static/js/shop.js


@pytest.fixture
def shopper(db):
    return UserFactory(username="lin")  # password "pass-word-123"


def paid_order(user) -> tuple[Order, Invoice]:
    """A placed (paid) order whose invoice is pending, with one failed numbering attempt
    already recorded, as the worker's first try would leave it at failure rate 0.5."""
    order = place_order(user=user)
    order_place_paid(order_id=order.pk)  # enqueues numbering on commit; no worker consumes it here
    invoice = Invoice.objects.get(order=order)
    with pytest.raises(InvoiceAttemptFailed):
        invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=1))
    invoice.refresh_from_db()
    assert (invoice.status, invoice.number, invoice.attempts) == (InvoiceStatus.PENDING, None, 1)
    assert invoice.last_error  # the failure is recorded for staff ...
    return order, invoice


def issue_number(invoice: Invoice) -> int:
    """What the worker does when an attempt succeeds."""
    issued = invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=0))
    assert issued.status == InvoiceStatus.ISSUED
    assert issued.number is not None
    return issued.number


def expect_pending(page: Page, invoice: Invoice) -> None:
    block = page.locator("#invoice-block")
    expect(block.get_by_test_id("invoice-number")).to_have_text("Pending")
    expect(block).to_contain_text("Invoice: Pending")
    expect(block).to_contain_text("being generated")
    expect(block.get_by_role("button", name="Refresh")).to_be_visible()
    # ... but never shown to the shopper.
    expect(page.locator("body")).not_to_contain_text(invoice.last_error)
    assert visible_problems(page) == []


def expect_issued(page: Page, number: int) -> None:
    block = page.locator("#invoice-block")
    expect(block.get_by_test_id("invoice-number")).to_have_text(f"INV-{number}")
    expect(block).not_to_contain_text("Pending")
    expect(block.get_by_role("button", name="Refresh")).to_have_count(0)
    assert visible_problems(page) == []


def test_without_javascript_refresh_rerenders_the_page_with_the_number(
    new_context, page_problems, artifacts_dir: Path, shopper
):
    order, invoice = paid_order(shopper)
    page = new_context(java_script_enabled=False).new_page()
    sign_in(page, username="lin", password="pass-word-123")
    page.goto(f"/orders/{order.pk}/")
    expect(page.get_by_test_id("order-status")).to_have_text("Paid")
    expect_pending(page, invoice)
    page.screenshot(path=str(artifacts_dir / "issue3-invoice-pending-nojs.png"), full_page=True)

    # Refresh before the number exists: still pending, still no error.
    with page.expect_navigation():
        page.get_by_role("button", name="Refresh").click()
    expect_pending(page, invoice)

    number = issue_number(invoice)

    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Refresh").click()
    response = navigation.value
    assert response is not None
    assert (response.request.method, response.status) == ("GET", 200)
    assert re.search(rf"/orders/{order.pk}/\??$", page.url), page.url
    expect_issued(page, number)
    page.screenshot(path=str(artifacts_dir / "issue3-invoice-issued-nojs.png"), full_page=True)
    assert page_problems.errors == []


def test_with_javascript_the_block_refreshes_in_place_on_click_and_by_polling(
    new_context, page_problems, artifacts_dir: Path, shopper
):
    clicked_order, clicked_invoice = paid_order(shopper)
    polled_order, polled_invoice = paid_order(shopper)
    context = new_context()
    # The page's timers run on a clock the test controls: polling happens only when the
    # test lets time pass, so a click and a poll can be told apart.
    context.clock.install()
    page = context.new_page()
    sign_in(page, username="lin", password="pass-word-123")

    block_fetches: list[str] = []
    page.on("request", lambda r: "/invoice-block/" in r.url and block_fetches.append(r.url))
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and navigations.append(frame.url))

    def open_order(order: Order) -> None:
        page.goto(f"/orders/{order.pk}/")
        page.clock.pause_at(page.evaluate("Date.now()") / 1000 + 0.1)  # seconds; the page's timers stop
        page.evaluate("window.__sameDocument = true")
        navigations.clear()
        block_fetches.clear()

    def same_document() -> bool:
        return page.evaluate("window.__sameDocument === true") and navigations == []

    def mark_block() -> None:
        page.locator("#invoice-block").evaluate("el => el.dataset.seen = 'old'")

    def block_replaced() -> bool:
        return page.locator("#invoice-block[data-seen='old']").count() == 0

    # 1. Refresh clicked while pending: the block alone is fetched and replaced in place.
    open_order(clicked_order)
    expect_pending(page, clicked_invoice)
    mark_block()
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#invoice-block[data-seen='old']")).to_have_count(0)
    assert len(block_fetches) == 1
    expect_pending(page, clicked_invoice)
    assert same_document()

    # 2. The worker issues the number; Refresh (the replaced block's own button) shows it.
    number = issue_number(clicked_invoice)
    mark_block()
    page.get_by_role("button", name="Refresh").click()
    expect_issued(page, number)
    assert block_replaced()
    assert len(block_fetches) == 2
    assert same_document(), navigations
    expect(page.get_by_test_id("order-status")).to_have_text("Paid")
    page.screenshot(path=str(artifacts_dir / "issue3-invoice-issued-js-click.png"), full_page=True)

    # 3. Polling: nobody clicks. While the page's clock stands still nothing is fetched;
    #    once a poll interval passes, the block fetches itself and shows the number.
    open_order(polled_order)
    expect_pending(page, polled_invoice)
    polled_number = issue_number(polled_invoice)
    assert polled_number == number + 1
    page.wait_for_timeout(300)  # real time passes, the page's clock does not
    expect_pending(page, polled_invoice)
    assert block_fetches == []
    page.clock.run_for(POLL_MS + 100)
    expect_issued(page, polled_number)
    assert len(block_fetches) == 1
    assert same_document(), navigations
    # Issued: polling stops.
    page.clock.run_for(5 * POLL_MS)
    page.wait_for_timeout(200)
    assert len(block_fetches) == 1
    page.screenshot(path=str(artifacts_dir / "issue3-invoice-issued-js-poll.png"), full_page=True)
    assert page_problems.errors == []
