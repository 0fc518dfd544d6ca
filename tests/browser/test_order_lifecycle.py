"""Issue 14 in a real browser: a shopper cancels an unpaid order on its page; staff ship a
paid order and refund part of it in the admin; the real worker delivers the simulated
provider's refund webhook; the shopper's page shows the whole story (CSP: no inline JS)."""

import os

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop

from decimal import Decimal

import pytest
from django.test import Client
from playwright.sync_api import Page, expect

from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import WorkerProcess, place_order, wait_until, worker_env
from inventory.models import Stock
from orders.models import Order, OrderStatus
from payments.models import Refund, RefundStatus
from payments.tests.test_refunds import paid_order
from tests.browser.pages import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(live_server):
    process = WorkerProcess(
        worker_env(PAYMENT_WEBHOOK_URL=f"{live_server.url}/api/v1/webhooks/payments/", INVOICE_FAILURE_RATE="0")
    ).start()
    yield process
    process.stop()


def watch(page: Page, problems: list[str]) -> Page:
    """Uncaught exceptions, console errors (a CSP violation is one) and failed requests,
    except the browser's own request for /favicon.ico on admin pages."""
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


def test_shopper_cancels_an_unpaid_order_on_its_page(new_context):
    problems: list[str] = []
    shopper = UserFactory(username="grace")  # password "pass-word-123"
    lamp = ProductFactory(name="Desk lamp", on_hand=5)
    order = place_order(user=shopper, product=lamp, quantity=2)
    assert Stock.objects.get(product=lamp).reserved == 2
    page = watch(new_context().new_page(), problems)
    sign_in(page, username="grace", password="pass-word-123")

    page.goto(f"/orders/{order.pk}/")
    expect(page.get_by_test_id("order-status")).to_have_text("Pending payment")
    page.get_by_role("button", name="Cancel order").click()

    expect(page.get_by_test_id("order-status")).to_have_text("Cancelled")
    expect(page.get_by_text(f"Order #{order.pk} is cancelled")).to_be_visible()
    expect(page.get_by_test_id("timeline-cancelled")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel order")).to_have_count(0)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    assert Stock.objects.get(product=lamp).reserved == 0
    assert problems == []


def test_staff_ship_then_refund_in_the_admin_and_the_shopper_sees_it(new_context, worker):
    problems: list[str] = []
    StaffFactory(username="clerk")  # the staff group's permissions, not a superuser
    mug = ProductFactory(name="Enamel mug", price=Decimal("12.50"), on_hand=10)
    order = paid_order(Client(), lines=((mug, 3),))
    order.user.set_password("pass-word-123")
    order.user.save()
    assert Stock.objects.get(product=mug).on_hand == 7

    staff = watch(new_context().new_page(), problems)
    staff.goto("/admin/login/")
    staff.fill("#id_username", "clerk")
    staff.fill("#id_password", "pass-word-123")
    staff.locator("input[type=submit]").click()
    staff.goto(f"/admin/orders/order/{order.pk}/change/")

    # Ship: carrier and tracking on the admin's Ship page.
    staff.get_by_role("link", name="Ship…").click()
    staff.get_by_label("Carrier").fill("DHL")
    staff.get_by_label("Tracking number").fill("JD0140001")
    staff.get_by_label("Tracking url").fill("https://dhl.example/track/JD0140001")
    staff.locator("#ship-submit").click()
    expect(staff.locator(".messagelist")).to_contain_text(f"Order #{order.pk} shipped.")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SHIPPED

    # Refund one mug, back to stock, through the provider.
    staff.get_by_role("link", name="Refund…").click()
    expect(staff.get_by_test_id("refundable")).to_have_text(f"{order.total} EUR")
    staff.get_by_label(f"{mug.sku}: {mug.name} (bought 3)").fill("1")
    staff.get_by_label("Reason").fill("arrived chipped")
    staff.locator("#refund-submit").click()
    expect(staff.locator(".messagelist")).to_contain_text("Refund of 15.00 EUR requested")
    refund = Refund.objects.get(order=order)

    wait_until(lambda: Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED, timeout=30)
    staff.reload()
    expect(staff.locator(".field-status .readonly")).to_contain_text("Partially refunded")
    expect(staff.locator("#refunds-group")).to_contain_text("succeeded")
    assert Stock.objects.get(product=mug).on_hand == 8

    # The shopper's page tells the story, with the tracking link.
    shopper = watch(new_context().new_page(), problems)
    sign_in(shopper, username=order.user.username, password="pass-word-123")
    shopper.goto(f"/orders/{order.pk}/")
    expect(shopper.get_by_test_id("order-status")).to_have_text("Partially refunded")
    expect(shopper.get_by_test_id("timeline-shipped")).to_contain_text("DHL, tracking JD0140001")
    expect(shopper.get_by_test_id("tracking-link")).to_have_attribute("href", "https://dhl.example/track/JD0140001")
    expect(shopper.get_by_test_id("timeline-refund_succeeded")).to_contain_text("Refunded 15.00 EUR")
    assert problems == []
