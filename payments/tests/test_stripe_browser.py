"""The shopper's journey in Chromium with PAYMENT_PROVIDER=stripe: the pay step sends the
browser to the fake Stripe's hosted Checkout page (another origin, over real HTTP), "Pay"
there makes the fake send a Stripe-signed checkout.session.completed to the live server and
redirect back to the order page, which shows the order paid."""

import os

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop

import copy
import re
from decimal import Decimal
from pathlib import Path

import pytest
from csp.constants import SELF
from playwright.sync_api import expect

from common.tests.factories import ProductFactory, UserFactory
from orders.models import Order, OrderStatus
from payments.models import PaymentAttempt, PaymentStatus, WebhookEvent
from payments.tests.fake_stripe import FakeStripe

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SECRET = "whsec_test_YnJvd3Nlci1zdHJpcGUtc2VjcmV0"


def test_shopper_pays_on_the_stripe_checkout_page(chromium, live_server, settings):
    ProductFactory(sku="MUG-001", name="Enamel mug", price=Decimal("12.50"), on_hand=5)
    UserFactory(username="payer")  # password "pass-word-123"
    with FakeStripe(webhook_secret=SECRET, webhook_url=f"{live_server.url}/api/v1/webhooks/stripe/") as fake:
        settings.PAYMENT_PROVIDER = "stripe"
        settings.STRIPE_SECRET_KEY = "sk_test_fake"
        settings.STRIPE_WEBHOOK_SECRET = SECRET
        settings.STRIPE_API_BASE = fake.url
        settings.SITE_URL = live_server.url
        # What config/settings/base.py derives at start-up for PAYMENT_PROVIDER=stripe with
        # STRIPE_API_BASE (test_stripe.py checks that): the pay form may redirect there.
        policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
        policy["DIRECTIVES"]["form-action"] = [SELF, "https://checkout.stripe.com", fake.url]
        settings.CONTENT_SECURITY_POLICY = policy
        context = chromium.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: msg.type == "error" and problems.append(f"console: {msg.text}"))
        try:
            page.goto("/accounts/login/")
            page.get_by_label("Username").fill("payer")
            page.get_by_label("Password").fill("pass-word-123")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_text("Hi, payer")).to_be_visible()

            page.goto("/")
            page.locator("li.card[data-sku='MUG-001']").get_by_role("button", name="Add to cart").click()
            expect(page).to_have_url(re.compile(r"/cart/$"))
            page.get_by_role("link", name="Checkout").click()
            for label, value in [("Full name", "Ada Lovelace"), ("Address", "12 Analytical Row"), ("City", "London"),
                                 ("Postal code", "N1 7AA")]:  # fmt: skip
                page.get_by_label(label, exact=True).fill(value)
            page.get_by_label("Country", exact=True).select_option("GB")
            page.get_by_role("button", name="Place order").click()

            # The pay step sends the shopper to Stripe's hosted page (the fake's).
            expect(page).to_have_url(re.compile(r"/orders/\d+/pay/$"))
            order = Order.objects.get()
            page.locator("#pay-button").click()
            expect(page).to_have_url(re.compile(rf"^{re.escape(fake.url)}/checkout/pay/cs_test_\d+$"))
            expect(page.get_by_test_id("fake-stripe-amount")).to_have_text(f"{order.total} EUR")
            page.locator("#fake-stripe-pay").click()

            # Back on the order page, paid: the signed webhook arrived before the redirect.
            expect(page).to_have_url(re.compile(rf"/orders/{order.pk}/$"))
            expect(page.get_by_test_id("payment-status")).to_have_text("Paid")
            expect(page.get_by_test_id("order-status")).to_have_text("Paid")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "stripe-confirmation.png"), full_page=True)
        except BaseException:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "stripe-browser-failure.png"), full_page=True)
            raise
        finally:
            context.close()

    assert problems == []
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    (attempt,) = PaymentAttempt.objects.all()
    assert (attempt.provider, attempt.status) == ("stripe", PaymentStatus.SUCCEEDED)
    assert [c.idempotency_key for c in fake.calls("/v1/checkout/sessions")] == [
        f"{attempt.provider_reference}:checkout-session"
    ]
    assert list(WebhookEvent.objects.values_list("provider", "changed_state")) == [("stripe", True)]
