"""Storefront cart and checkout pages: price display per PRICES_INCLUDE_TAX (the totals rows
always add up to what is charged), the coupon Apply step, errors next to their fields and in
a summary, quantity and stock messages that name the product and the real limit."""

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from common.tests.factories import ProductFactory
from common.tests.helpers import ADDRESS
from inventory.models import Stock
from orders.models import CartLine, Order
from orders.pricing import totals_compute
from orders.selectors import cart_view
from orders.services import cart_add_item, cart_get_or_create
from orders.templatetags.shop_totals import totals_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def shopper(client, user):
    client.force_login(user)
    return client


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def _key(response) -> str:
    form = response.context["form"]
    return form.initial.get("idempotency_key") or form.data["idempotency_key"]


def _rows(response) -> list[tuple[str, str]]:
    html = response.content.decode()
    table = html[html.index('<table class="totals">') : html.index("</table>", html.index('<table class="totals">'))]
    return [
        (th, re.sub(r"\s+", " ", td).strip())
        for th, td in re.findall(r'<th scope="row">([^<]*)</th><td[^>]*>([^<]*)</td>', table)
    ]


# --- Totals display --------------------------------------------------------------------------


def test_cart_totals_with_vat_included_show_the_rate_and_add_up(shopper, user, settings):
    settings.PRICES_INCLUDE_TAX = True
    ProductFactory(sku="MUG-1", name="Mug", price=Decimal("12.50"))  # 15.00 with VAT
    cart_add_item(cart=cart_get_or_create(user=user), sku="MUG-1", quantity=2)

    page = shopper.get("/cart/")

    # net 25.00 + shipping 4.90 = 29.90, VAT 5.98, total 35.88
    assert _rows(page) == [
        ("Subtotal", "30.00 EUR"),
        ("Shipping", "5.88 EUR"),
        ("Total", "35.88 EUR"),
        ("Includes VAT 20\u00a0%", "5.98 EUR"),
    ]
    assert "15.00 EUR" in page.content.decode()  # the unit price shown with VAT


def test_cart_totals_for_a_business_shop_add_vat_per_rate(shopper, user, settings):
    settings.PRICES_INCLUDE_TAX = False
    ProductFactory(sku="MUG-1", price=Decimal("12.50"))
    ProductFactory(sku="BOOK-1", price=Decimal("40.00"), tax_rate=Decimal("0.0550"))
    cart = cart_get_or_create(user=user)
    cart_add_item(cart=cart, sku="MUG-1", quantity=1)
    cart_add_item(cart=cart, sku="BOOK-1", quantity=1)

    page = shopper.get("/cart/")

    assert _rows(page) == [
        ("Subtotal", "52.50 EUR"),
        ("Shipping", "Free"),
        ("VAT 5.5\u00a0%", "2.20 EUR"),
        ("VAT 20\u00a0%", "2.50 EUR"),
        ("Total", "57.20 EUR"),
    ]


@hsettings(max_examples=60, deadline=None)
@given(
    lines=st.lists(
        st.tuples(
            st.decimals(min_value=Decimal("0.01"), max_value=Decimal("500"), places=2),
            st.sampled_from([Decimal("0"), Decimal("0.055"), Decimal("0.1"), Decimal("0.2")]),
        ),
        min_size=1,
        max_size=5,
    ),
    coupon=st.sampled_from(["", "WELCOME10", "FIVEOFF"]),
    include=st.booleans(),
)
def test_the_rows_always_add_up_to_the_charged_total(lines, coupon, include):
    from django.conf import settings

    class Line:
        def __init__(self, total: Decimal, rate: Decimal) -> None:
            self.line_total, self.tax_rate = total, rate

    totals = totals_compute(lines=lines, currency="EUR", coupon=coupon)

    class View:
        currency = "EUR"
        subtotal, discount, shipping, tax, total = (
            totals.subtotal,
            totals.discount,
            totals.shipping,
            totals.tax,
            totals.total,
        )

    View.lines = [Line(t, r) for t, r in lines]
    old = settings.PRICES_INCLUDE_TAX
    settings.PRICES_INCLUDE_TAX = include
    try:
        rows = totals_rows(totals=View, coupon=coupon)
    finally:
        settings.PRICES_INCLUDE_TAX = old
    amount = {r.label: r.amount or Decimal(0) for r in rows}
    signed = sum(-(r.amount or 0) if r.negative else (r.amount or 0) for r in rows if r.kind in ("line", "tax"))
    assert signed == totals.total
    assert amount["Total"] == totals.total
    assert sum(r.amount for r in rows if r.kind in ("tax", "included")) == totals.tax


# --- Checkout: coupon Apply, errors ----------------------------------------------------------


def test_apply_shows_the_coupon_totals_and_places_nothing(shopper, user, settings):
    settings.PRICES_INCLUDE_TAX = False
    ProductFactory(sku="MUG-1", price=Decimal("100.00"))
    cart_add_item(cart=cart_get_or_create(user=user), sku="MUG-1", quantity=1)
    key = _key(shopper.get("/checkout/"))

    applied = shopper.post("/checkout/", {"coupon": "welcome10", "idempotency_key": key, "action": "apply"})

    assert applied.status_code == 200
    assert Order.objects.count() == 0
    assert ("Discount (WELCOME10)", "−10.00 EUR") in _rows(applied)
    assert ("Total", "108.00 EUR") in _rows(applied)
    assert "error-summary" not in applied.content.decode()  # the empty address is not an error yet
    assert _key(applied) == key  # the same attempt: placing it next is one order
    assert _messages(applied) == ["Coupon WELCOME10 applied; the totals below include it."]

    placed = shopper.post("/checkout/", {**ADDRESS, "coupon": "WELCOME10", "idempotency_key": key, "action": "place"})

    order = Order.objects.get()
    assert placed.status_code == 302
    assert (order.discount, order.total) == (Decimal("10.00"), Decimal("108.00"))


def test_an_unknown_coupon_is_an_error_next_to_the_field_and_in_the_summary(shopper, user):
    ProductFactory(sku="MUG-1")
    cart_add_item(cart=cart_get_or_create(user=user), sku="MUG-1", quantity=1)
    key = _key(shopper.get("/checkout/"))

    applied = shopper.post("/checkout/", {"coupon": "NOPE", "idempotency_key": key, "action": "apply"})
    placed = shopper.post("/checkout/", {**ADDRESS, "coupon": "NOPE", "idempotency_key": key})

    for response in (applied, placed):
        html = response.content.decode()
        assert response.status_code == 400
        assert '<a href="#id_coupon">Coupon code: This coupon code is not valid.</a>' in html
        assert 'id="id_coupon-error">This coupon code is not valid.</span>' in html
        assert 'aria-describedby="id_coupon-error"' in html
        assert 'aria-invalid="true"' in html
        assert not any(r[0].startswith("Discount") for r in _rows(response))
    assert Order.objects.count() == 0


def test_address_errors_sit_next_to_their_fields_and_in_the_summary(shopper, user):
    ProductFactory(sku="MUG-1")
    cart_add_item(cart=cart_get_or_create(user=user), sku="MUG-1", quantity=1)
    key = _key(shopper.get("/checkout/"))

    response = shopper.post("/checkout/", {**ADDRESS, "city": "", "country": "XX", "idempotency_key": key})

    html = response.content.decode()
    assert response.status_code == 400
    assert '<a href="#id_city">City: This field is required.</a>' in html
    assert 'href="#id_country">Country: Select a valid choice.' in html
    assert 'id="id_city-error"' in html
    assert 'id="id_country-error"' in html
    assert Order.objects.count() == 0


def test_country_is_a_select_of_countries(shopper, user):
    ProductFactory(sku="MUG-1")
    cart_add_item(cart=cart_get_or_create(user=user), sku="MUG-1", quantity=1)

    html = shopper.get("/checkout/").content.decode()

    assert '<select name="country"' in html
    assert '<option value="FR" selected>France</option>' in html
    assert '<option value="DE">Germany</option>' in html


def test_a_stock_shortage_at_placement_names_the_product_in_the_summary(shopper, user):
    product = ProductFactory(sku="SHORT", name="Brass pen", on_hand=2)
    cart_add_item(cart=cart_get_or_create(user=user), sku="SHORT", quantity=2)
    key = _key(shopper.get("/checkout/"))
    Stock.objects.filter(product=product).update(on_hand=1)

    response = shopper.post("/checkout/", {**ADDRESS, "idempotency_key": key})

    assert response.status_code == 409
    assert "<li>Not enough stock for Brass pen (only 1 available).</li>" in response.content.decode()
    assert Order.objects.count() == 0


# --- Quantity messages -----------------------------------------------------------------------


def test_a_quantity_above_the_line_limit_names_the_product_and_the_limit(shopper, user):
    ProductFactory(sku="MUG-1", name="Enamel mug", on_hand=500)
    line = cart_add_item(cart=cart_get_or_create(user=user), sku="MUG-1", quantity=1)

    refused = shopper.post(f"/cart/lines/{line.pk}/update/", {"quantity": 9999}, follow=True)
    added = shopper.post("/cart/add/", {"sku": "MUG-1", "quantity": 100}, follow=True)

    expected = "Please enter a whole number from 1 to 99 for Enamel mug (at most 99 per order line)."
    assert _messages(refused) == [expected]
    assert _messages(added) == [expected]
    assert CartLine.objects.get().quantity == 1


def test_a_quantity_above_the_stock_names_the_product_and_what_is_available(shopper, user):
    ProductFactory(sku="MUG-1", name="Enamel mug", on_hand=3)
    line = cart_add_item(cart=cart_get_or_create(user=user), sku="MUG-1", quantity=1)

    refused = shopper.post(f"/cart/lines/{line.pk}/update/", {"quantity": 5}, follow=True)

    assert _messages(refused) == ["Only 3 of Enamel mug available (you asked for 5)."]
    assert cart_view(cart=cart_get_or_create(user=user)).item_count == 1


@pytest.mark.parametrize(("include", "unit", "line"), [(True, "15.00", "30.00"), (False, "12.50", "25.00")])
def test_the_order_and_pay_pages_show_line_prices_the_way_the_totals_do(shopper, user, settings, include, unit, line):
    """Line prices on the order page and the pay step follow PRICES_INCLUDE_TAX like the
    cart and its totals (net lines above VAT-inclusive totals would not add up)."""
    from orders.services import checkout_place_order

    settings.PRICES_INCLUDE_TAX = include
    ProductFactory(sku="MUG-1", name="Mug", price=Decimal("12.50"))
    cart = cart_get_or_create(user=user)
    cart_add_item(cart=cart, sku="MUG-1", quantity=2)
    order = checkout_place_order(cart=cart, user=user, shipping_address=ADDRESS)

    page = shopper.get(f"/orders/{order.pk}/").content.decode()
    pay = shopper.get(f"/orders/{order.pk}/pay/").content.decode()

    assert f"<td>{unit}</td>" in page
    assert f"{line} EUR</td>" in page
    assert f"<span>{line} EUR</span>" in pay
