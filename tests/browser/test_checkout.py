"""Issue 2 in a real browser: catalog -> cart -> sign up -> checkout -> the order page.

And the checkout form's idempotency key: a double click or a resubmitted "Place order"
makes one order, and the shopper lands on that order, not on an error.
"""

import contextlib
import os

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import APIResponse, Page, Route, expect
from playwright.sync_api import Error as PlaywrightError

from common.models import IdempotencyKey
from common.tests.factories import ProductFactory, UserFactory
from inventory.models import Reservation, ReservationStatus, Stock
from orders.models import Order, OrderStatus
from tests.browser.pages import ADDRESS, COUNTRY, add_from_catalog, fill_checkout_form, sign_in, visible_problems

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ORDER_PATH = re.compile(r"/orders/(\d+)/$")


@pytest.fixture
def mug(db):
    return ProductFactory(
        sku="MUG-001", name="Enamel mug", price=Decimal("12.50"), tax_rate=Decimal("0.2000"), on_hand=5
    )


@pytest.fixture
def tea(db):
    return ProductFactory(
        sku="TEA-002", name="Loose leaf tea", price=Decimal("7.25"), tax_rate=Decimal("0.1000"), on_hand=8
    )


@pytest.fixture
def shopper(db):
    return UserFactory(username="grace")  # password "pass-word-123"


def open_order_page(page: Page, order: Order) -> None:
    """After "Place order" the shop may show a payment step first; the order page is the
    subject here, so go to it if the redirect landed elsewhere."""
    landed = ORDER_PATH.search(page.url)
    if landed is None or landed.group(1) != str(order.pk):
        page.goto(f"/orders/{order.pk}/")
    expect(page.get_by_role("heading", name=f"Order #{order.pk}")).to_be_visible()


def test_shopper_adds_two_products_signs_up_checks_out_and_sees_the_order(
    new_context, page_problems, artifacts_dir: Path, mug, tea, settings
):
    settings.PRICES_INCLUDE_TAX = False  # the net figures below (a business shop's display)
    ProductFactory(sku="PEN-003", name="Fountain pen", price=Decimal("30.00"), on_hand=3)  # stays on the shelf
    page = new_context().new_page()

    # Browse anonymously: all three products are for sale, with their stock.
    page.goto("/")
    expect(page.locator("li.card")).to_have_count(3)
    expect(page.locator("li.card[data-sku='MUG-001']")).to_contain_text("12.50 EUR")
    expect(page.locator("li.card[data-sku='MUG-001']")).to_contain_text("5 in stock")

    # Two products from the catalog, then two of the tea in the cart.
    add_from_catalog(page, sku="MUG-001")
    expect(page.locator(".message.success")).to_contain_text("Added 1 × Enamel mug to your cart.")
    add_from_catalog(page, sku="TEA-002")
    expect(page).to_have_url(re.compile(r"/cart/$"))
    tea_row = page.locator("tr[data-sku='TEA-002']")
    tea_row.get_by_role("spinbutton").fill("2")
    tea_row.get_by_role("button", name="Update").click()
    expect(page.locator("tr[data-sku='TEA-002'] td.num")).to_have_text("14.50 EUR")
    expect(page.locator("table.lines tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("cart-count")).to_have_text("3")

    # Checkout asks to sign in; the shopper signs up instead and comes back with the cart.
    page.get_by_role("link", name="Checkout").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/checkout/$"))
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Username", exact=True).fill("ada")
    page.get_by_label("Email", exact=True).fill("ada@example.com")
    page.get_by_label("Password", exact=True).fill("correct-horse-battery-42")
    page.get_by_label("Password confirmation", exact=True).fill("correct-horse-battery-42")
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/checkout/$"))
    expect(page.get_by_text("Hi, ada")).to_be_visible()
    summary = page.locator("ul.summary")
    expect(summary).to_contain_text("1 × Enamel mug")
    expect(summary).to_contain_text("2 × Loose leaf tea")

    fill_checkout_form(page)
    page.get_by_role("button", name="Place order").click()
    page.wait_for_load_state()

    ada = get_user_model().objects.get(username="ada")
    order = Order.objects.get(user=ada)
    open_order_page(page, order)

    # The order page: status, both lines, totals, reservation expiry.
    expect(page.get_by_test_id("order-status")).to_have_text("Pending payment")
    rows = page.locator("table.lines tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Enamel mug")
    expect(rows.nth(0).locator("td").nth(1)).to_have_text("1")
    expect(rows.nth(0).locator("td.num")).to_have_text("12.50 EUR")
    expect(rows.nth(1)).to_contain_text("Loose leaf tea")
    expect(rows.nth(1).locator("td").nth(1)).to_have_text("2")
    expect(rows.nth(1).locator("td.num")).to_have_text("14.50 EUR")
    totals = page.locator("table.totals")
    # net 27.00 < 50.00: flat shipping; VAT 20% of (12.50 + 4.90) + 10% of 14.50 = 3.48 + 1.45
    expect(totals.locator("tr", has_text="Subtotal").locator("td")).to_have_text("27.00 EUR")
    expect(totals.locator("tr", has_text="Shipping").locator("td")).to_have_text("4.90 EUR")
    expect(totals.locator("tr", has_text="VAT 10").locator("td")).to_have_text("1.45 EUR")  # VAT by rate
    expect(totals.locator("tr", has_text="VAT 20").locator("td")).to_have_text("3.48 EUR")
    expect(page.get_by_test_id("order-total")).to_have_text("36.83 EUR")
    expires_at = order.reservation_expires_at
    assert expires_at is not None
    expect(page.get_by_text("Your items are reserved until")).to_contain_text(f"{expires_at:%H:%M} UTC")
    expect(page.locator("address")).to_contain_text(ADDRESS["line1"])
    expect(page.get_by_test_id("cart-count")).to_have_count(0)  # the cart was emptied
    page.screenshot(path=str(artifacts_dir / "issue2-order-page.png"), full_page=True)

    # And the database agrees with the page.
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert (order.subtotal, order.shipping, order.tax, order.total) == (
        Decimal("27.00"),
        Decimal("4.90"),
        Decimal("4.93"),
        Decimal("36.83"),
    )
    assert order.shipping_address == {**ADDRESS, "country": COUNTRY}
    assert [(line.sku, line.quantity) for line in order.lines.order_by("sku")] == [("MUG-001", 1), ("TEA-002", 2)]
    reservations = Reservation.objects.filter(order_line__order=order)
    assert sorted((r.product.sku, r.quantity, r.status) for r in reservations) == [
        ("MUG-001", 1, ReservationStatus.ACTIVE),
        ("TEA-002", 2, ReservationStatus.ACTIVE),
    ]
    assert abs(expires_at - (order.created_at + settings.RESERVATION_TTL)) < timedelta(seconds=5)
    assert {s.product.sku: s.reserved for s in Stock.objects.select_related("product")} == {
        "MUG-001": 1,
        "TEA-002": 2,
        "PEN-003": 0,
    }
    assert visible_problems(page) == []
    assert page_problems.errors == []


def test_place_order_sent_twice_makes_one_order_and_both_land_on_it(new_context, page_problems, shopper, mug):
    """The browser's POST reaches the server twice (a resubmit, a retrying proxy): the
    form's idempotency key makes the second a replay of the first, not a new checkout."""
    page = new_context().new_page()
    sign_in(page, username="grace", password="pass-word-123")
    add_from_catalog(page, sku="MUG-001")
    page.goto("/checkout/")
    fill_checkout_form(page)
    key = page.locator("input[name='idempotency_key']").input_value()
    assert re.fullmatch(r"[0-9a-f]{32}", key)

    sent: list[tuple[int, str]] = []

    def send_twice(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        first = route.fetch(max_redirects=0)
        second = route.fetch(max_redirects=0)
        sent.extend(
            [(first.status, first.headers.get("location", "")), (second.status, second.headers.get("location", ""))]
        )
        route.fulfill(response=second)

    page.route("**/checkout/", send_twice)
    page.get_by_role("button", name="Place order").click()
    page.wait_for_load_state()
    page.unroute("**/checkout/")

    order = Order.objects.get(user=shopper)  # exactly one
    assert len(sent) == 2
    assert sent[0][0] == sent[1][0] == 302, sent
    assert sent[0][1] == sent[1][1] != "", sent  # the replay sends the shopper to the same place
    assert not re.search(r"/(checkout|cart)/", sent[0][1]), sent  # somewhere past the checkout
    assert IdempotencyKey.objects.filter(key=key, status=IdempotencyKey.Status.COMPLETED).count() == 1
    assert Stock.objects.get(product=mug).reserved == 1
    assert visible_problems(page) == []
    open_order_page(page, order)
    expect(page.get_by_test_id("order-status")).to_have_text("Pending payment")
    assert page_problems.errors == []


class HeldPosts:
    """Route handler for the checkout POST: lets each request reach the server (which does
    all its work) but holds the response back, as a slow network would, so the shopper can
    click again while the first "Place order" is still in flight."""

    def __init__(self) -> None:
        self.held: list[tuple[Route, APIResponse]] = []

    def __call__(self, route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        self.held.append((route, route.fetch(max_redirects=0)))

    @property
    def outcomes(self) -> list[tuple[int, str]]:
        return [(response.status, response.headers.get("location", "")) for _, response in self.held]

    def wait_for(self, page: Page, count: int) -> None:
        for _ in range(100):
            if len(self.held) >= count:
                return
            page.wait_for_timeout(50)
        raise AssertionError(f"expected {count} checkout POSTs to reach the server, saw {len(self.held)}")

    def release_last(self) -> None:
        """The browser shows the answer to its latest submission; earlier ones were abandoned."""
        for route, response in self.held[:-1]:
            with contextlib.suppress(PlaywrightError):
                route.fulfill(response=response)
        route, response = self.held[-1]
        route.fulfill(response=response)


def button_centre(page: Page, name: str) -> tuple[float, float]:
    """Where a shopper's pointer would click. Raw mouse clicks, unlike locator clicks, do
    not wait for a pending navigation, so they can land while a submission is in flight."""
    box = page.get_by_role("button", name=name).bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_double_click_without_javascript_sends_two_posts_and_makes_one_order(new_context, page_problems, shopper, mug):
    """No script guards the button: both clicks reach the server; the key makes the second
    a replay, and the shopper lands on the one order."""
    page = new_context(java_script_enabled=False).new_page()
    sign_in(page, username="grace", password="pass-word-123")
    add_from_catalog(page, sku="MUG-001")
    page.goto("/checkout/")
    fill_checkout_form(page)
    held = HeldPosts()
    page.route("**/checkout/", held)
    x, y = button_centre(page, "Place order")

    page.mouse.click(x, y)
    held.wait_for(page, 1)
    page.mouse.click(x, y)  # the page still shows the form: the first answer has not come
    held.wait_for(page, 2)
    with page.expect_navigation():
        held.release_last()
    page.unroute("**/checkout/")

    order = Order.objects.get(user=shopper)  # exactly one
    assert held.outcomes[0] == held.outcomes[1], held.outcomes
    assert held.outcomes[0][0] == 302
    assert not re.search(r"/(checkout|cart)/", held.outcomes[0][1]), held.outcomes
    assert Stock.objects.get(product=mug).reserved == 1
    assert visible_problems(page) == []
    open_order_page(page, order)
    expect(page.locator("table.lines tbody tr")).to_have_count(1)
    assert page_problems.errors == []


def test_double_click_with_javascript_sends_one_post_and_makes_one_order(new_context, page_problems, shopper, mug):
    """With script on, the button disables itself after the first submit (data-once)."""
    page = new_context().new_page()
    sign_in(page, username="grace", password="pass-word-123")
    add_from_catalog(page, sku="MUG-001")
    page.goto("/checkout/")
    fill_checkout_form(page)
    held = HeldPosts()
    page.route("**/checkout/", held)
    x, y = button_centre(page, "Place order")

    page.mouse.click(x, y)
    held.wait_for(page, 1)
    page.mouse.click(x, y)  # the second click of the double click lands on a disabled button
    page.wait_for_timeout(500)
    assert len(held.held) == 1, held.outcomes
    with page.expect_navigation():
        held.release_last()
    page.unroute("**/checkout/")

    order = Order.objects.get(user=shopper)
    assert held.outcomes[0][0] == 302
    assert Stock.objects.get(product=mug).reserved == 1
    open_order_page(page, order)
    assert visible_problems(page) == []
    assert page_problems.errors == []
