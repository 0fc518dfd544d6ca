"""Test helpers for invoicing."""

from invoicing.tasks import assign_invoice_number


def record_numbering_enqueues(monkeypatch) -> list[int]:
    """Stand in for the numbering task's enqueue (`delay` or `apply_async`): each call is
    recorded as the invoice id it names, in order; nothing reaches the broker."""
    enqueued: list[int] = []

    def delay(invoice_id: int) -> None:
        enqueued.append(invoice_id)

    def apply_async(args: tuple = (), kwargs: dict | None = None, **options: object) -> None:
        delay(*args, **(kwargs or {}))

    monkeypatch.setattr(assign_invoice_number, "delay", delay)
    monkeypatch.setattr(assign_invoice_number, "apply_async", apply_async)
    return enqueued


def paid_order(*, user=None, products=None, quantities=None):
    """A paid order with its (pending) invoice and the succeeded payment attempt it was paid by."""
    import uuid

    from django.utils import timezone

    from common.tests.factories import ProductFactory, UserFactory
    from common.tests.helpers import ADDRESS
    from flows.order_paid import order_place_paid
    from orders.services import cart_add_item, cart_get_or_create, checkout_place_order
    from payments.models import PaymentAttempt, PaymentStatus

    user = user or UserFactory()
    products = products or [ProductFactory(on_hand=50)]
    quantities = quantities or [1] * len(products)
    cart = cart_get_or_create(user=user)
    for product, quantity in zip(products, quantities, strict=True):
        cart_add_item(cart=cart, sku=product.sku, quantity=quantity)
    order = checkout_place_order(cart=cart, user=user, shipping_address=ADDRESS)
    PaymentAttempt.objects.create(
        order=order,
        amount=order.total,
        currency=order.currency,
        provider_reference=f"pay_{uuid.uuid4().hex[:16]}",
        status=PaymentStatus.SUCCEEDED,
        completed_at=timezone.now(),
    )
    return order_place_paid(order_id=order.pk)


def refund_succeeded(*, order, amount=None, lines=None, reason="Damaged in transit"):
    """A succeeded Refund row (made directly, as the refund flow would leave it) and its
    credit note, created in one transaction like flows/refund_succeeded.py does.
    `lines`: [(order_line, quantity, gross amount)]; `amount` defaults to their sum."""
    import uuid
    from decimal import Decimal

    from django.db import transaction
    from django.utils import timezone

    from invoicing.services import credit_note_create_for_refund
    from payments.models import PaymentAttempt, PaymentStatus, Refund, RefundLine, RefundStatus

    lines = lines or []
    if amount is None:
        amount = sum((Decimal(gross) for _, _, gross in lines), Decimal("0"))
    with transaction.atomic():
        refund = Refund.objects.create(
            order=order,
            attempt=PaymentAttempt.objects.filter(order=order, status=PaymentStatus.SUCCEEDED).first()
            or PaymentAttempt.objects.create(
                order=order,
                amount=order.total,
                currency=order.currency,
                provider_reference=f"pay_{uuid.uuid4().hex[:16]}",
                status=PaymentStatus.SUCCEEDED,
                completed_at=timezone.now(),
            ),
            amount=Decimal(amount),
            currency=order.currency,
            reason=reason,
            status=RefundStatus.SUCCEEDED,
            provider_reference=f"re_{uuid.uuid4().hex[:16]}",
            succeeded_at=timezone.now(),
        )
        RefundLine.objects.bulk_create(
            RefundLine(refund=refund, order_line=line, quantity=quantity, amount=Decimal(gross))
            for line, quantity, gross in lines
        )
        return credit_note_create_for_refund(refund_id=refund.pk)
