"""Helpers for the invoices-as-documents tests: staff-billed invoices through the real
services, and payment results through the real webhook endpoint."""

from decimal import Decimal
from typing import Any

from django.test import Client

from common.tests.factories import StaffFactory, UserFactory
from flows.draft_finalize import draft_order_finalize
from invoicing.models import Invoice
from invoicing.services import FaultInjector, invoice_amount_policy, invoice_assign_number
from orders.services import DraftLineSpec, draft_order_create
from payments.models import PaymentAttempt
from payments.services import payment_attempt_create
from payments.tests.helpers import event_body, post_webhook

FEE = DraftLineSpec(description="Consulting", quantity=1, unit_price=Decimal("100.00"), tax_rate=Decimal("0.2000"))


def staff_invoice(
    *,
    lines: list[DraftLineSpec] | None = None,
    customer: Any = None,
    issue: bool = True,
    **draft: Any,
) -> Invoice:
    """A staff-billed invoice (finalized draft order), issued by the numbering service."""
    created = draft_order_create(
        customer=customer or UserFactory(), lines=lines or [FEE], actor=StaffFactory(), **draft
    )
    finalized = draft_order_finalize(draft_id=created.pk)
    invoice = Invoice.objects.get(order_id=finalized.order_id)
    if issue:
        invoice = invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=0))
    return invoice


def pay(invoice: Invoice, amount: Decimal | None = None, *, method: str = "pm_card_success") -> PaymentAttempt:
    """Start a payment attempt for the invoice's order (the provider is not called: tests
    deliver its webhooks themselves)."""
    order = invoice.order
    return payment_attempt_create(
        order_id=order.pk, user=order.user, payment_method=method, amount=amount, amount_policy=invoice_amount_policy
    )


def webhook(attempt: PaymentAttempt, event_type: str = "payment.succeeded", **kwargs: Any) -> Any:
    """Deliver a signed provider event through the real endpoint; asserts it was accepted."""
    response = post_webhook(Client(), event_body(attempt, event_type, **kwargs))
    assert response.status_code == 200, response.content
    return response


def succeed(invoice: Invoice, amount: Decimal | None = None) -> PaymentAttempt:
    attempt = pay(invoice, amount)
    webhook(attempt)
    attempt.refresh_from_db()
    return attempt
