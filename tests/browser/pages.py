"""What a shopper does on the storefront, step by step, through the real pages."""

import re

from playwright.sync_api import Page

ADDRESS = {"name": "Ada Lovelace", "line1": "12 Analytical Row", "city": "London", "postal_code": "N1 7AA"}
COUNTRY = "GB"
ERROR_WORDS = re.compile(r"\b(error|exception|traceback|failed|failure|fault)\b", re.IGNORECASE)


def sign_in(page: Page, *, username: str, password: str) -> None:
    """Sign in through the login page."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert page.get_by_text(f"Hi, {username}").is_visible(), page.url


def add_from_catalog(page: Page, *, sku: str) -> None:
    """Press "Add to cart" on the product's card in the catalog."""
    page.goto("/")
    page.locator(f"li.card[data-sku='{sku}']").get_by_role("button", name="Add to cart").click()
    page.wait_for_load_state()


def fill_checkout_form(page: Page) -> None:
    for label, value in (
        ("Full name", ADDRESS["name"]),
        ("Address", ADDRESS["line1"]),
        ("City", ADDRESS["city"]),
        ("Postal code", ADDRESS["postal_code"]),
    ):
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_label("Country", exact=True).select_option(COUNTRY)


def visible_problems(page: Page) -> list[str]:
    """Anything on the page that would read as an error to a shopper."""
    problems = [t for t in page.locator(".error, .message.error, .errorlist").all_inner_texts() if t.strip()]
    problems += ERROR_WORDS.findall(page.locator("body").inner_text())
    return problems
