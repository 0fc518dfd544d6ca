"""Payment links: signed, expiring, bound to the invoice and its amount due; paying through
them uses the same attempts and webhooks as checkout, in parts when the invoice allows it."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import signing
from django.utils import timezone

from common.tests.helpers import run_in_threads
from inventory.models import Stock
from invoicing.models import Invoice
from invoicing.selectors import invoice_amount_paid, invoice_payment_status, payment_link_resolve
from invoicing.services import (
    AmountExceedsDue,
    InvoicePaid,
    LinkNotPayable,
    invoice_amount_policy,
    invoice_pay_by_link,
    invoice_payment_link_create,
    invoice_void,
)
from invoicing.tests.docs_helpers import FEE, staff_invoice, succeed, webhook
from orders.models import OrderStatus
from orders.services import DraftLineSpec
from payments.models import PaymentAttempt, PaymentStatus
from payments.services import PaymentInProgress

pytestmark = pytest.mark.django_db


def _link(invoice: Invoice) -> str:
    return invoice_payment_link_create(invoice_id=invoice.pk).path


def _form_key(html: str) -> str:
    return re.search(r'name="idempotency_key" value="([0-9a-f]+)"', html).group(1)


def _post_pay(client, path: str, *, amount: str, method: str = "pm_card_success"):
    page = client.get(path)
    data = {"amount": amount, "payment_method": method, "idempotency_key": _form_key(page.content.decode())}
    return client.post(path, data)


# --- Link states -------------------------------------------------------------------------------


def test_a_valid_link_shows_the_invoice_and_a_pay_form_without_login(client):
    invoice = staff_invoice()
    link = invoice_payment_link_create(invoice_id=invoice.pk)

    response = client.get(link.path)

    assert response.status_code == 200
    html = response.content.decode()
    assert f"Invoice {invoice.display_number}" in html
    assert 'data-state="payable"' in html
    assert "120.00 EUR" in html
    assert 'id="link-pay-form"' in html
    assert link.amount == Decimal("120.00")
    assert abs((link.expires_at - timezone.now()) - timedelta(days=30)) < timedelta(seconds=5)


def test_paying_through_the_link_uses_the_checkout_attempts_and_webhooks(client):
    invoice = staff_invoice()
    path = _link(invoice)

    response = _post_pay(client, path, amount="120.00")

    assert response.status_code == 302
    assert response["Location"] == path
    attempt = PaymentAttempt.objects.get(order=invoice.order)
    assert (attempt.amount, attempt.status, attempt.payment_method) == (
        Decimal("120.00"),
        PaymentStatus.PROCESSING,
        "pm_card_success",
    )
    assert 'data-state="processing"' in client.get(path).content.decode()

    webhook(attempt)

    page = client.get(path)
    assert page.status_code == 200
    assert 'data-state="paid"' in page.content.decode()
    invoice.order.refresh_from_db()
    assert invoice.order.status == OrderStatus.PAID
    assert Invoice.objects.filter(order=invoice.order).count() == 1


def test_an_expired_link_shows_a_clear_page_and_does_nothing(client, settings):
    invoice = staff_invoice()
    path = _link(invoice)
    key = _form_key(client.get(path).content.decode())

    with time_machine.travel(timezone.now() + settings.PAYMENT_LINK_TTL + timedelta(seconds=1)):
        page = client.get(path)
        posted = client.post(path, {"amount": "120.00", "payment_method": "pm_card_success", "idempotency_key": key})
        with pytest.raises(LinkNotPayable):
            invoice_pay_by_link(token=path.split("/")[2], amount=Decimal("120.00"), payment_method="pm_card_success")

    assert page.status_code == 410
    assert "expired" in page.content.decode()
    assert posted.status_code == 410
    assert not PaymentAttempt.objects.exists()
    with time_machine.travel(timezone.now() + settings.PAYMENT_LINK_TTL - timedelta(minutes=1)):
        assert client.get(path).status_code == 200  # still valid just before


@pytest.mark.parametrize("tamper", ["signature", "amount", "invoice", "garbage"])
def test_a_tampered_link_shows_a_clear_page_and_does_nothing(client, tamper):
    invoice = staff_invoice()
    other = staff_invoice()
    token = invoice_payment_link_create(invoice_id=invoice.pk).token
    if tamper == "signature":
        token = token[:-1] + ("A" if token[-1] != "A" else "B")
    elif tamper == "amount":  # re-signed with another key: the amount cannot be changed
        token = signing.dumps({"invoice": invoice.pk, "amount": "1.00", "currency": "EUR"}, key="x" * 50)
    elif tamper == "invoice":
        _, rest = token.split(":", 1)
        other_payload = invoice_payment_link_create(invoice_id=other.pk).token.split(":", 1)[0]
        token = f"{other_payload}:{rest}"
    else:
        token = "not-a-token"

    page = client.get(f"/pay/{token}/")
    posted = client.post(f"/pay/{token}/", {"amount": "1.00", "payment_method": "pm_card_success"})

    assert page.status_code == 404
    assert "not valid" in page.content.decode()
    assert posted.status_code == 404
    assert payment_link_resolve(token=token).state == "invalid"
    assert not PaymentAttempt.objects.exists()


def test_a_link_reused_after_the_invoice_was_paid_shows_paid_and_does_nothing(client):
    invoice = staff_invoice()
    path = _link(invoice)
    key = _form_key(client.get(path).content.decode())
    succeed(invoice)

    page = client.get(path)
    posted = client.post(path, {"amount": "120.00", "payment_method": "pm_card_success", "idempotency_key": key})

    assert page.status_code == 200
    assert 'data-state="paid"' in page.content.decode()
    assert 'id="link-pay-form"' not in page.content.decode()
    assert posted.status_code == 409
    assert PaymentAttempt.objects.filter(order=invoice.order).count() == 1


def test_a_void_invoice_link_does_nothing_and_no_new_link_can_be_made(client):
    invoice = staff_invoice()
    path = _link(invoice)
    invoice_void(invoice_id=invoice.pk)

    page = client.get(path)
    assert page.status_code == 410
    assert "VOID" in page.content.decode()
    assert client.post(path, {"amount": "120.00", "payment_method": "pm_card_success"}).status_code == 410
    assert not PaymentAttempt.objects.exists()


def test_a_double_submit_starts_one_payment(client):
    invoice = staff_invoice()
    path = _link(invoice)
    data = {
        "amount": "120.00",
        "payment_method": "pm_card_success",
        "idempotency_key": _form_key(client.get(path).content.decode()),
    }
    first, second = client.post(path, data), client.post(path, data)

    assert (first.status_code, second.status_code) == (302, 302)
    assert PaymentAttempt.objects.filter(order=invoice.order).count() == 1


# --- Partial payments --------------------------------------------------------------------------


def test_two_partial_payments_make_partially_paid_then_paid_and_a_third_is_refused(client):
    product_line = DraftLineSpec(
        description="Licence", quantity=2, unit_price=Decimal("50.00"), tax_rate=Decimal("0.2")
    )
    invoice = staff_invoice(lines=[product_line], allow_partial=True)  # 120.00
    path = _link(invoice)

    assert _post_pay(client, path, amount="45.50").status_code == 302
    webhook(PaymentAttempt.objects.get(order=invoice.order))
    assert invoice_payment_status(invoice=invoice) == "partially_paid"
    page = client.get(path).content.decode()
    assert 'data-state="payable"' in page
    assert "74.50 EUR" in page  # what is left
    invoice.order.refresh_from_db()
    assert invoice.order.status == OrderStatus.PENDING_PAYMENT

    assert _post_pay(client, path, amount="74.50").status_code == 302
    webhook(PaymentAttempt.objects.get(order=invoice.order, status=PaymentStatus.PROCESSING))
    assert invoice_payment_status(invoice=invoice) == "paid"
    assert invoice_amount_paid(invoice=invoice) == Decimal("120.00")
    invoice.order.refresh_from_db()
    assert invoice.order.status == OrderStatus.PAID
    assert Invoice.objects.filter(order=invoice.order).count() == 1

    third = client.post(path, {"amount": "1.00", "payment_method": "pm_card_success", "idempotency_key": "k3"})
    assert third.status_code == 409
    with pytest.raises(LinkNotPayable):
        invoice_pay_by_link(token=path.split("/")[2], amount=Decimal("1.00"), payment_method="pm_card_success")
    assert PaymentAttempt.objects.filter(order=invoice.order).count() == 2


def test_partial_payment_commits_stock_only_when_paid_in_full(client):
    from common.tests.factories import ProductFactory

    product = ProductFactory(on_hand=10, price=Decimal("10.00"))
    invoice = staff_invoice(lines=[DraftLineSpec(sku=product.sku, quantity=5)], allow_partial=True)  # 60.00
    succeed(invoice, Decimal("30.00"))
    stock = Stock.objects.get(product=product)
    assert (stock.on_hand, stock.reserved) == (10, 5)
    succeed(invoice)
    stock.refresh_from_db()
    assert (stock.on_hand, stock.reserved) == (5, 0)


def test_partial_amounts_are_refused_unless_the_invoice_allows_them(client):
    invoice = staff_invoice()  # allow_partial False
    path = _link(invoice)

    response = _post_pay(client, path, amount="20.00")

    assert response.status_code == 400
    assert "paid in full" in response.content.decode()
    assert not PaymentAttempt.objects.exists()


def test_more_than_the_link_amount_is_refused(client):
    invoice = staff_invoice(allow_partial=True)
    path = _link(invoice)
    assert _post_pay(client, path, amount="120.01").status_code == 400
    with pytest.raises(AmountExceedsDue):
        invoice_pay_by_link(token=path.split("/")[2], amount=Decimal("120.01"), payment_method="pm_card_success")
    assert not PaymentAttempt.objects.exists()


def test_an_old_link_never_charges_more_than_is_still_due():
    invoice = staff_invoice(allow_partial=True)
    token = invoice_payment_link_create(invoice_id=invoice.pk).token  # bound to 120.00
    succeed(invoice, Decimal("100.00"))

    assert payment_link_resolve(token=token).payable == Decimal("20.00")
    with pytest.raises(AmountExceedsDue):
        invoice_pay_by_link(token=token, amount=Decimal("50.00"), payment_method="pm_card_success")
    attempt = invoice_pay_by_link(token=token, amount=Decimal("20.00"), payment_method="pm_card_success")
    assert attempt.amount == Decimal("20.00")


@pytest.mark.django_db(transaction=True)
def test_concurrent_partial_payments_never_exceed_the_amount_due():
    invoice = staff_invoice(lines=[FEE], allow_partial=True)  # 120.00
    order = invoice.order

    def payer(i: int) -> list[str]:
        from payments.services import payment_attempt_create

        outcomes = []
        for _ in range(40):
            try:
                attempt = payment_attempt_create(
                    order_id=order.pk, user=order.user, amount=Decimal("25.00"), amount_policy=invoice_amount_policy
                )
            except PaymentInProgress:
                outcomes.append("busy")
                continue
            except (AmountExceedsDue, InvoicePaid) as exc:
                outcomes.append(type(exc).__name__)
                return outcomes
            webhook(attempt)
            outcomes.append("paid 25")
        return outcomes

    results = run_in_threads(payer, 8)

    assert not [r for r in results if isinstance(r, BaseException)], results
    attempts = PaymentAttempt.objects.filter(order=order)
    succeeded = attempts.filter(status=PaymentStatus.SUCCEEDED)
    assert sum(a.amount for a in succeeded) == Decimal("100.00")  # 4 x 25; a fifth would exceed 120
    assert not attempts.filter(refund_required=True).exists()
    assert sum(r.count("paid 25") for r in results) == 4
    assert invoice_payment_status(invoice=invoice) == "partially_paid"
    # The remaining 20.00 settles it; nothing more can be paid afterwards.
    webhook(payment_attempt_create_for(order, Decimal("20.00")))
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert sum(a.amount for a in attempts.filter(status=PaymentStatus.SUCCEEDED)) == invoice.total


@pytest.mark.django_db(transaction=True)
def test_concurrent_link_payments_for_the_full_amount_start_one_attempt():
    invoice = staff_invoice(lines=[FEE], allow_partial=True)
    token = invoice_payment_link_create(invoice_id=invoice.pk).token

    def pay_all(i: int) -> object:
        return invoice_pay_by_link(token=token, amount=Decimal("120.00"), payment_method="")

    results = run_in_threads(pay_all, 10)

    created = [r for r in results if isinstance(r, PaymentAttempt)]
    refused = [r for r in results if isinstance(r, PaymentInProgress | InvoicePaid | LinkNotPayable)]
    assert len(created) == 1
    assert len(refused) == 9, results
    in_flight = PaymentAttempt.objects.filter(order=invoice.order)
    assert sum(a.amount for a in in_flight) == Decimal("120.00")


def payment_attempt_create_for(order, amount: Decimal) -> PaymentAttempt:
    from payments.services import payment_attempt_create

    return payment_attempt_create(
        order_id=order.pk, user=order.user, amount=amount, amount_policy=invoice_amount_policy
    )


def test_staff_copy_a_payment_link_from_the_admin(client):
    from common.tests.factories import StaffFactory

    invoice = staff_invoice()
    client.force_login(StaffFactory(is_superuser=True))
    page = client.get(f"/admin/invoicing/invoice/{invoice.pk}/change/").content.decode()
    assert 'id="create-payment-link"' in page
    assert client.get(f"/admin/invoicing/invoice/{invoice.pk}/payment-link/").status_code == 403  # POST only

    response = client.post(f"/admin/invoicing/invoice/{invoice.pk}/payment-link/")

    assert response.status_code == 200
    url = re.search(r'id="payment-link-url" data-testid="payment-link-url">', response.content.decode())
    value = re.search(r'value="(http://testserver/pay/[^"]+)"', response.content.decode()).group(1)
    assert url is not None
    assert 'data-state="payable"' in client.get(value.removeprefix("http://testserver")).content.decode()


def test_staff_send_and_void_from_the_admin(client):
    from django.core import mail

    from common.tests.factories import StaffFactory

    invoice = staff_invoice()
    client.force_login(StaffFactory(is_superuser=True))

    client.post(f"/admin/invoicing/invoice/{invoice.pk}/send/")
    assert len(mail.outbox) == 1
    page = client.post(f"/admin/invoicing/invoice/{invoice.pk}/void/", {"reason": "typo"}, follow=True)

    invoice.refresh_from_db()
    assert invoice.status == "void"
    assert "is void" in page.content.decode()
    assert 'id="correct-invoice"' in page.content.decode()
    draft_page = client.post(f"/admin/invoicing/invoice/{invoice.pk}/correct/", follow=True).content.decode()
    assert "created from invoice" in draft_page
