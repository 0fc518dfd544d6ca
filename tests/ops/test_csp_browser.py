"""The Content-Security-Policy in a real Chromium: the storefront, the admin and the
Swagger UI (drf-spectacular's split view with the sidecar assets) work with no CSP
violation: no inline script anywhere, and nothing loaded from another origin."""

import os
from unittest import mock

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop here

import pytest
from playwright.sync_api import Page

from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import place_order
from flows.order_paid import order_place_paid
from invoicing.models import Invoice
from invoicing.services import invoice_assign_number

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def watch(page: Page) -> list[str]:
    problems: list[str] = []
    page.on(
        "console",
        lambda msg: (
            problems.append(f"{page.url}: {msg.text}")
            if "Content Security Policy" in msg.text or "Refused to" in msg.text
            else None
        ),
    )
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    return problems


def test_pages_admin_and_api_docs_run_under_the_csp(chromium, live_server):
    ProductFactory(name="CSP Lamp", on_hand=3)
    StaffFactory(username="csp-admin", is_superuser=True)
    order = place_order(user=UserFactory())
    with mock.patch("invoicing.tasks.assign_invoice_number.delay"):
        order_place_paid(order_id=order.pk)
    invoice_assign_number(invoice_id=Invoice.objects.get(order=order).pk)
    context = chromium.new_context()
    page = context.new_page()
    problems = watch(page)

    response = page.goto(f"{live_server.url}/")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy.split("style-src")[0]  # never for scripts
    page.get_by_text("CSP Lamp").first.wait_for()

    page.goto(f"{live_server.url}/api/v1/docs/")
    page.locator(".opblock").first.wait_for(timeout=15000)  # the UI rendered the schema's operations
    assert page.locator(".opblock").count() > 5

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "csp-admin")
    page.fill("#id_password", "pass-word-123")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    page.goto(f"{live_server.url}/admin/inventory/product/")
    page.goto(f"{live_server.url}/admin/invoicing/invoice/gap-audit/")
    verdict = page.locator('[data-audit="ok"]')
    verdict.wait_for()
    assert verdict.evaluate("e => getComputedStyle(e).color") == "rgb(18, 128, 92)"  # the stylesheet applied

    context.close()
    assert problems == []
