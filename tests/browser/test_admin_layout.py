"""The admin's busiest pages fit their window at 1280 and 390 px (no sideways scroll of the
page; at 1280 no list or inline scrolls inside its box either: long texts wrap), pass axe-core
with no serious or critical violation (the draft order page too: its inline inputs are named
from their column by static/js/admin-labels.js), with screenshots kept in test-artifacts/. The CSS is
static/css/admin-shop.css, loaded on every admin page by templates/admin/base_site.html."""

import os

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page

from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import place_order
from flows.order_paid import order_place_paid
from invoicing.models import Invoice
from orders.services import DraftLineSpec, draft_order_create
from payments.models import PaymentAttempt
from tests.browser.test_accessibility import AXE, _axe_problems

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WIDTHS = {"desktop": 1280, "phone": 390}
PASSWORD = "pass-word-123"
LONG_ERROR = (
    "InvoiceAttemptFailed: simulated numbering fault (INVOICE_FAILURE_RATE=0.5) on attempt 7; "
    "the transaction rolled back and number 42 went back to series INV, next try in 16 s"
)


@pytest.fixture
def admin_data(db) -> dict[str, Any]:
    boss = StaffFactory(username="boss", is_superuser=True)
    customer = UserFactory(username="margaret.hamilton-with-a-long-username")
    product = ProductFactory(
        sku="LMP-009-WALNUT-EDITION", name="Dimmable LED desk lamp with a walnut base", on_hand=200
    )
    order = place_order(user=customer, product=product, quantity=3)
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
    paid = place_order(user=customer, product=product, quantity=2)
    order_place_paid(order_id=paid.pk)
    for _ in range(6):
        other = place_order(user=customer, product=product, quantity=1)
        order_place_paid(order_id=other.pk)
    Invoice.objects.update(attempts=7, last_error=LONG_ERROR, last_attempt_at=timezone.now())
    draft = draft_order_create(
        customer=customer,
        lines=[
            DraftLineSpec(quantity=2, sku=product.sku),
            DraftLineSpec(
                quantity=1,
                description="Installation and calibration on site, including travel within 50 km",
                unit_price=Decimal("180.00"),
                tax_rate=Decimal("0.2000"),
            ),
        ],
        actor=boss,
        notes="Deliver to the loading dock at the back; ask for the facilities manager.",
    )
    return {"order": order, "invoice": Invoice.objects.get(order=paid), "draft": draft}


def _overflow(page: Page, *, inner_too: bool) -> dict[str, Any] | None:
    return page.evaluate(
        """innerToo => {
          const root = document.documentElement;
          // At desktop width a list's or an inline's own box must not scroll either: a column
          // behind a sideways scroll is as hidden as one off the page.
          const boxes = innerToo ? [...document.querySelectorAll('#changelist .results, .inline-group .tabular')]
            .filter(b => b.scrollWidth > b.clientWidth + 1)
            .map(b => ({box: b.id || b.className, scrollWidth: b.scrollWidth, clientWidth: b.clientWidth})) : [];
          if (root.scrollWidth <= root.clientWidth && boxes.length === 0) return null;
          const wide = [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > root.clientWidth + 1)
            .slice(0, 8)
            .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '.' + [...e.classList].join('.'));
          return {scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, wide, boxes};
        }""",
        inner_too,
    )


@pytest.mark.parametrize("device", list(WIDTHS))
def test_admin_pages_fit_the_window(admin_data, new_context, artifacts_dir: Path, device: str):
    width = WIDTHS[device]
    page = new_context(viewport={"width": width, "height": 900}, bypass_csp=True).new_page()  # axe's script
    page.goto("/admin/login/")
    page.get_by_label("Username").fill("boss")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    pages = {
        "admin-index": "/admin/",
        "invoice-list": "/admin/invoicing/invoice/",
        "invoice-change": f"/admin/invoicing/invoice/{admin_data['invoice'].pk}/change/",
        "order-change": f"/admin/orders/order/{admin_data['order'].pk}/change/",
        "draft-change": f"/admin/orders/draftorder/{admin_data['draft'].pk}/change/",
        "order-list": "/admin/orders/order/",
        "product-list": "/admin/inventory/product/",
    }
    failures = {}
    for name, path in pages.items():
        response = page.goto(path)
        assert response is not None
        assert response.status == 200, (name, response.status)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(artifacts_dir / f"admin-{name}-{width}.png"), full_page=True)
        overflow = _overflow(page, inner_too=device == "desktop")
        problems = _axe_problems(page, AXE.read_text())
        if overflow or problems:
            failures[name] = {"overflow": overflow, "axe": problems}
    assert failures == {}, json.dumps(failures, indent=2)
