"""Issue 5 in a real browser: staff create a draft order in the admin, finalize it, copy the
payment link; the customer opens it in a fresh browser (no login) and pays; the real
worker numbers the invoice and delivers the provider's signed webhooks; the invoice shows
paid on the link page and in the admin."""

import os

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop

import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import WorkerProcess, wait_until, worker_env
from inventory.models import Stock
from invoicing.models import Invoice
from invoicing.selectors import invoice_payment_status
from orders.models import DraftOrder, OrderStatus

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(live_server):
    process = WorkerProcess(
        worker_env(PAYMENT_WEBHOOK_URL=f"{live_server.url}/api/v1/webhooks/payments/", INVOICE_FAILURE_RATE="0.3")
    ).start()
    yield process
    process.stop()


def watch(page: Page, problems: list[str]) -> Page:
    """Uncaught exceptions, console errors and failed requests, except the browser's own
    request for /favicon.ico (the admin pages have no icon)."""
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda m: (
            m.type == "error"
            and not m.location.get("url", "").endswith("/favicon.ico")
            and problems.append(f"console: {m.text} at {m.location.get('url')}")
        ),
    )
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status} {r.request.method} {r.url}"))
    return page


def select2(page: Page, select_id: str, text: str) -> None:
    """Pick `text` in a Django admin autocomplete (select2) field and wait until the field
    shows it. The results list is redrawn when the search answers, so a click can land on
    an option that is being replaced; the pick is retried until it sticks."""
    rendered = page.locator(f"#{select_id} + .select2 .select2-selection__rendered")
    for _ in range(3):
        page.locator(f"#{select_id} + .select2 .select2-selection").click()
        page.locator(".select2-container--open .select2-search__field").fill(text)
        option = page.locator(".select2-container--open .select2-results__option:not(.loading-results)", has_text=text)
        option.first.wait_for()
        page.wait_for_load_state("networkidle")  # the search for `text` has answered
        option.first.click()
        try:
            expect(rendered).to_contain_text(text, timeout=2000)
            return
        except AssertionError:
            page.keyboard.press("Escape")
    expect(rendered).to_contain_text(text)


def test_staff_bill_a_customer_who_pays_through_the_link(new_context, live_server, worker):
    problems: list[str] = []
    StaffFactory(username="boss", is_superuser=True)  # password "pass-word-123"
    customer = UserFactory(username="acme-buyer", email="ap@acme.example")
    ProductFactory(sku="LAMP-1", name="Desk lamp", price=Decimal("79.00"), tax_rate=Decimal("0.2000"), on_hand=5)

    # Staff: sign in to the admin and create a draft order with a catalog and a free text line.
    staff = watch(new_context().new_page(), problems)
    staff.goto("/admin/login/")
    staff.fill("#id_username", "boss")
    staff.fill("#id_password", "pass-word-123")
    staff.locator("input[type=submit]").click()
    staff.goto("/admin/orders/draftorder/add/")
    select2(staff, "id_customer", "acme-buyer")
    staff.fill("#id_due_days", "14")
    select2(staff, "id_lines-0-product", "LAMP-1")
    staff.fill("#id_lines-0-quantity", "2")
    staff.locator(".add-row a").click()
    staff.fill("#id_lines-1-description", "Installation")
    staff.fill("#id_lines-1-quantity", "1")
    staff.fill("#id_lines-1-unit_price", "42.00")
    staff.fill("#id_lines-1-tax_rate", "20")  # percent
    staff.locator("input[name=_continue]").click()

    # Review the totals: 2 x 79.00 + 42.00 = 200.00 net, 40.00 VAT, 240.00.
    totals = staff.get_by_test_id("draft-totals")
    expect(totals).to_contain_text("Subtotal")
    expect(totals.locator("td[data-label=Total]")).to_have_text("240.00 EUR")
    draft = DraftOrder.objects.get(customer=customer)
    assert draft.lines.count() == 2

    # Finalize: stock held, order placed, invoice pending -> issued by the worker.
    staff.locator("#finalize-draft").click()
    expect(staff.locator(".messagelist")).to_contain_text(f"Draft order #{draft.pk} finalized")
    draft.refresh_from_db()
    assert draft.order.status == OrderStatus.PENDING_PAYMENT
    assert Stock.objects.get(product__sku="LAMP-1").reserved == 2
    staff.locator("#open-invoice").click()
    invoice = Invoice.objects.get(order=draft.order)
    wait_until(
        lambda: Invoice.objects.filter(pk=invoice.pk, status="issued").exists(),
        timeout=60,
        message=f"invoice numbered by the worker; log:\n{worker.log()[-2000:]}",
    )
    staff.reload()
    expect(staff.locator("#create-payment-link")).to_be_visible()
    expect(staff.get_by_test_id("admin-payment-status")).to_have_text("unpaid")

    # Copy the payment link.
    staff.locator("#create-payment-link").click()
    expect(staff.get_by_test_id("link-amount")).to_have_text("240.00 EUR")
    url = staff.get_by_test_id("payment-link-url").input_value()
    assert re.match(rf"^{re.escape(live_server.url)}/pay/[\w:.-]+/$", url), url

    # The customer, in a fresh browser context (no session, no login), pays.
    buyer = watch(new_context().new_page(), problems)
    buyer.goto(url)
    expect(buyer.get_by_role("heading", name=re.compile(r"Invoice INV-\d+"))).to_be_visible()
    expect(buyer.get_by_test_id("amount-due")).to_have_text("240.00 EUR")
    buyer.locator("input[name=payment_method][value=pm_card_success]").check()
    # The POST answers with a redirect to the page; under a loaded CI machine that can take
    # longer than an assertion's 5 s, so the test waits for the page the redirect leads to.
    with buyer.expect_navigation(timeout=30_000):
        buyer.locator("#link-pay-button").click()
    expect(buyer.locator("ul.messages")).to_contain_text("Payment of 240.00 EUR started.")
    expect(buyer.get_by_test_id("link-state")).to_have_attribute("data-state", re.compile("processing|paid"))

    # The provider's signed webhook reaches the shop through the worker; the page updates.
    for _ in range(60):
        if buyer.get_by_test_id("link-state").get_attribute("data-state") == "paid":
            break
        buyer.wait_for_timeout(1000)
        buyer.reload()
    expect(buyer.get_by_test_id("link-state")).to_have_attribute("data-state", "paid")
    expect(buyer.get_by_test_id("invoice-payment-status")).to_have_text("Paid")
    expect(buyer.get_by_test_id("amount-due")).to_have_text("0.00 EUR")

    # Staff see it paid; the order is paid and its stock committed; one invoice.
    staff.goto(f"/admin/invoicing/invoice/{invoice.pk}/change/")
    expect(staff.get_by_test_id("admin-payment-status")).to_have_text("paid")
    invoice.refresh_from_db()
    assert invoice_payment_status(invoice=invoice) == "paid"
    draft.order.refresh_from_db()
    assert draft.order.status == OrderStatus.PAID
    stock = Stock.objects.get(product__sku="LAMP-1")
    assert (stock.on_hand, stock.reserved) == (3, 0)
    assert Invoice.objects.filter(order=draft.order).count() == 1
    assert problems == []
