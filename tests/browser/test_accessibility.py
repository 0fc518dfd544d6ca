"""Accessibility and layout in a real Chromium, at a desktop (1280 px) and a phone (390 px)
width: axe-core (npm, package.json; `npm ci` in .ci/run) injected into each page finds no
serious or critical violation; no page is wider than the window; keyboard focus is visible.
Screenshots of every page at both widths are kept in test-artifacts/."""

import os

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import place_order
from inventory.images import image_demo
from inventory.models import Category, Product
from inventory.services import product_image_set
from orders.models import Order
from orders.services import cart_add_item, cart_get_or_create

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = {"desktop": 1280, "phone": 390}
PASSWORD = "pass-word-123"  # the factories'
# WCAG 2.1 A and AA, plus axe's best practices (landmarks, one main, heading order...).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `npm install` at the repository root (package.json)")
    return AXE.read_text()


@pytest.fixture
def shop(db, settings, tmp_path) -> dict[str, Any]:
    settings.MEDIA_ROOT = str(tmp_path)  # pictures drawn for the test (inventory.images)
    kitchen = Category.objects.create(name="Kitchen & drink", slug="kitchen", position=0)
    home = Category.objects.create(name="Home", slug="home", position=1)
    mug = ProductFactory(sku="MUG-001", name="Enamel camp mug", price=Decimal("12.50"), category=kitchen, on_hand=40)
    ProductFactory(
        sku="BLK-011",
        name="Recycled wool blanket with a very long name that has to wrap on a phone",
        description="Recycled wool throw, 130 × 170 cm, woven in a small mill; " * 3,
        price=Decimal("1289.00"),
        category=home,
        on_hand=2,
    )
    ProductFactory(sku="OUT-001", name="Sold-out lamp", category=home, on_hand=0)
    for product in Product.objects.filter(sku__in=["MUG-001", "BLK-011"]):
        product_image_set(product=product, image=image_demo(label=product.name, name=product.sku.lower()))
    for n in range(12):  # a second catalog page
        ProductFactory(sku=f"NB-{n:02d}", name=f"Dot-grid notebook {n:02d}", category=kitchen, on_hand=9)
    shopper = UserFactory(username="grace")
    order = place_order(user=shopper, product=mug, quantity=2)
    cart_add_item(cart=cart_get_or_create(user=shopper), sku="BLK-011", quantity=1)
    cart_add_item(cart=cart_get_or_create(user=shopper), sku="MUG-001", quantity=3)
    admin = StaffFactory(username="boss", is_superuser=True)
    return {"shopper": shopper, "order": order, "admin": admin}


@pytest.fixture
def signed_in(new_context: Callable[..., BrowserContext], live_server: Any) -> Callable[[str | None, int], Page]:
    """A page of a context signed in as `username`, at `width` px (CSP bypassed so axe's
    script can be injected: the shop's CSP rightly forbids inline scripts)."""

    def make(username: str | None, width: int) -> Page:
        context = new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
        page = context.new_page()
        if username is not None:
            page.goto("/accounts/login/")
            page.get_by_label("Username").fill(username)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_load_state()
        return page

    return make


def _axe_problems(page: Page, axe_source: str) -> list[str]:
    page.add_script_tag(content=axe_source)
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})", AXE_TAGS
    )
    problems = []
    for violation in result["violations"]:
        if violation["impact"] in ("serious", "critical"):
            targets = [node["target"] for node in violation["nodes"]][:5]
            problems.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {json.dumps(targets)}")
    return problems


def _overflow(page: Page) -> dict[str, Any] | None:
    """The page's width beyond the window, and the widest elements causing it; None if none."""
    return page.evaluate(
        """() => {
          const root = document.documentElement;
          // A box scrolling sideways hides its content as surely as the page would.
          const boxes = [...document.querySelectorAll('main *')]
            .filter(e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX))
            .filter(e => e.scrollWidth > e.clientWidth + 1)
            .map(e => e.tagName.toLowerCase() + '.' + [...e.classList].join('.'));
          if (root.scrollWidth <= root.clientWidth && boxes.length === 0) return null;
          const wide = [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > root.clientWidth + 1)
            .slice(0, 5)
            .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '.' + [...e.classList].join('.'));
          return {scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, wide, boxes};
        }"""
    )


def _pages(shop: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """(name, who is signed in, path)."""
    return [
        ("catalog", None, "/"),
        ("catalog-search", None, "/?q=notebook&sort=-price&page=2"),
        ("product", None, "/products/BLK-011/"),
        ("sign-in", None, "/accounts/login/?next=/cart/"),
        ("not-found", None, "/no-such-page/"),
        ("cart", "grace", "/cart/"),
        ("checkout", "grace", "/checkout/"),
        ("order", "grace", f"/orders/{shop['order'].pk}/"),
        ("admin-index", "boss", "/admin/"),
        ("sign-up", None, "/accounts/signup/?next=/cart/"),
        ("order-list", "grace", "/orders/"),
        ("pay", "grace", f"/orders/{shop['order'].pk}/pay/"),
        ("sign-out", "grace", "/accounts/logout/"),
    ]


@pytest.mark.parametrize("device", list(WIDTHS))
def test_pages_pass_axe_fit_the_window_and_are_kept_as_screenshots(
    shop, signed_in, axe_source, artifacts_dir: Path, device: str
):
    width = WIDTHS[device]
    pages: dict[str | None, Page] = {}
    failures: dict[str, Any] = {}
    for name, who, path in _pages(shop):
        if who not in pages:
            pages[who] = signed_in(who, width)
        page = pages[who]
        page.goto(path)
        page.wait_for_load_state("networkidle")
        broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
        if broken:
            failures[f"{name}-images"] = broken
        page.screenshot(path=str(artifacts_dir / f"a11y-{name}-{width}.png"), full_page=True)
        problems = _axe_problems(page, axe_source)
        overflow = _overflow(page)
        if problems or overflow:
            failures[name] = {"axe": problems, "overflow": overflow}
    assert failures == {}, json.dumps(failures, indent=2)


def test_checkout_with_errors_passes_axe_and_points_to_each_field(shop, signed_in, axe_source, artifacts_dir: Path):
    page = signed_in("grace", WIDTHS["phone"])
    page.goto("/checkout/")
    page.get_by_label("Coupon code").fill("NOPE")
    page.get_by_role("button", name="Place order").click()
    page.wait_for_load_state()

    summary = page.locator("#error-summary")
    assert summary.is_visible()
    assert page.evaluate("document.activeElement.id") == "error-summary"  # read first
    assert summary.get_by_role("link", name="Full name: This field is required.").is_visible()
    page.screenshot(path=str(artifacts_dir / "a11y-checkout-errors-390.png"), full_page=True)
    assert _axe_problems(page, axe_source) == []
    assert _overflow(page) is None
    # The summary's link moves the focus to the field; the field says what is wrong.
    summary.get_by_role("link", name="Coupon code: This coupon code is not valid.").click()
    assert page.evaluate("document.activeElement.id") == "id_coupon"
    assert page.get_by_label("Coupon code").get_attribute("aria-describedby") == "id_coupon-error"


def test_apply_a_coupon_without_javascript_shows_the_new_totals(shop, new_context, artifacts_dir: Path):
    context = new_context(java_script_enabled=False, viewport={"width": 390, "height": 900})
    page = context.new_page()
    page.goto("/accounts/login/?next=/checkout/")
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert page.url.endswith("/checkout/")
    assert page.locator(".message.success").inner_text() == "Signed in as grace. Welcome back!"
    before = page.get_by_test_id("order-total").inner_text()

    page.get_by_label("Coupon code").fill("WELCOME10")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state()

    assert page.locator("table.totals tr", has_text="Discount (WELCOME10)").is_visible()
    assert page.get_by_test_id("order-total").inner_text() != before
    assert page.locator("#error-summary").count() == 0
    page.screenshot(path=str(artifacts_dir / "coupon-applied-390.png"), full_page=True)


def test_keyboard_focus_is_visible_on_the_storefront(shop, signed_in):
    page = signed_in(None, WIDTHS["desktop"])
    page.goto("/")
    seen = []
    for _ in range(12):
        page.keyboard.press("Tab")
        seen.append(
            page.evaluate(
                """() => { const e = document.activeElement; const s = getComputedStyle(e);
                  const r = e.getBoundingClientRect();
                  return {tag: e.tagName, text: (e.innerText || e.value || '').slice(0, 30),
                          outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2,
                          onScreen: r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0}; }"""
            )
        )
    assert seen[0]["text"] == "Skip to content"  # the first Tab shows the skip link
    assert [s for s in seen if not (s["outline"] and s["onScreen"])] == []


def test_enter_in_the_coupon_field_applies_and_in_an_address_field_places(shop, signed_in):
    page = signed_in("grace", WIDTHS["desktop"])
    page.goto("/checkout/")
    page.get_by_label("Coupon code").fill("WELCOME10")
    page.get_by_label("Coupon code").press("Enter")
    page.wait_for_load_state()
    assert page.locator("table.totals tr", has_text="Discount (WELCOME10)").is_visible()
    assert Order.objects.filter(user=shop["shopper"]).count() == 1  # the fixture's order only

    for label, value in (("Full name", "Grace Hopper"), ("Address", "1 Navy Yard"), ("City", "Arlington")):
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_label("Postal code").fill("22201")
    page.get_by_label("Country", exact=True).select_option("US")
    page.get_by_label("Postal code").press("Enter")
    page.wait_for_url("**/pay/")

    placed = Order.objects.filter(user=shop["shopper"]).order_by("-id").first()
    assert Order.objects.filter(user=shop["shopper"]).count() == 2
    assert placed.coupon_code == "WELCOME10"
    assert placed.shipping_address["country"] == "US"
