"""Staff billing: a draft order is finalized into a placed order and its invoice, in one
transaction (stock held without expiry, the invoice numbered by the worker after commit)."""

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from common.errors import ValidationFailed
from inventory.services import stock_reserve
from invoicing.models import BillingProfile
from invoicing.services import InvoiceTerms, invoice_create_for_order
from orders.models import DraftOrder, DraftOrderLine, DraftOrderStatus, OrderLine
from orders.pricing import totals_compute
from orders.services import draft_lock_open, order_place
from outbox.services import outbox_record


def _customer_billing_details(*, customer: User) -> dict[str, str]:
    profile = BillingProfile.objects.filter(user=customer).first()
    details = {
        "name": customer.get_full_name() or customer.get_username(),
        "email": customer.email,
    }
    if profile is not None:
        fields = ("company", "name", "line1", "line2", "city", "postal_code", "country", "vat_id", "email")
        details.update({name: getattr(profile, name) for name in fields if getattr(profile, name)})
    return {k: v for k, v in details.items() if v}


def _customer_payment_terms(*, draft: DraftOrder) -> int:
    if draft.due_days is not None:
        return draft.due_days
    profile_days = BillingProfile.objects.filter(user=draft.customer_id).values_list("payment_terms_days", flat=True)
    days = profile_days.first()
    return days if days is not None else int(settings.INVOICE_PAYMENT_TERMS_DAYS)


def draft_order_finalize(*, draft_id: int, actor: User | None = None) -> DraftOrder:
    """Place a draft: one transaction that reserves stock for the catalog lines (all or
    nothing, as checkout does, but without expiry), creates the order (`pending_payment`
    until paid in full, `placed_at` now) and its pending invoice, which the numbering
    worker issues after commit.

    Raises NotFound, IllegalTransition (already finalized), ValidationFailed (no lines, a
    product no longer sold, a bad coupon) or InsufficientStock naming the short SKUs;
    then nothing is reserved or created.
    """
    with transaction.atomic():
        draft = draft_lock_open(draft_id=draft_id)
        lines = list(DraftOrderLine.objects.filter(draft=draft).select_related("product").order_by("id"))
        if not lines:
            raise ValidationFailed("A draft order needs at least one line.", details={"lines": ["Add a line."]})
        inactive = sorted({line.sku for line in lines if line.product is not None and not line.product.is_active})
        if inactive:
            raise ValidationFailed("Some products are no longer sold.", details={"skus": inactive})
        quantities: dict[int, int] = {}
        for line in lines:
            if line.product_id is not None:
                quantities[line.product_id] = quantities.get(line.product_id, 0) + line.quantity
        if quantities:
            stock_reserve(quantities=quantities)

        totals = totals_compute(
            lines=[(line.line_total, line.tax_rate) for line in lines],
            currency=draft.currency,
            coupon=draft.coupon_code,
            shipping=draft.shipping,
        )
        customer = User.objects.get(pk=draft.customer_id)
        billing = _customer_billing_details(customer=customer)
        now = timezone.now()
        order, _ = order_place(
            user=customer,
            totals=totals,
            coupon_code=draft.coupon_code,
            shipping_address={
                k: billing[k] for k in ("name", "line1", "line2", "city", "postal_code", "country") if k in billing
            },
            lines=[
                OrderLine(
                    product=line.product,
                    sku=line.sku,
                    name=line.description,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    tax_rate=line.tax_rate,
                    line_total=line.line_total,
                )
                for line in lines
            ],
            reservation_expires_at=None,  # never swept: see RESERVATION_NO_EXPIRY
            placed_at=now,
            reason=f"draft order #{draft.pk} finalized",
            actor=actor,
            event_extra={"source": "draft_order", "draft_order_id": draft.pk},
        )
        invoice = invoice_create_for_order(
            order=order,
            terms=InvoiceTerms(
                due_days=_customer_payment_terms(draft=draft),
                allow_partial=draft.allow_partial,
                notes=draft.notes,
                billing_details=billing,
            ),
        )
        DraftOrder.objects.filter(pk=draft.pk).update(
            status=DraftOrderStatus.FINALIZED, order=order, finalized_at=now, finalized_by=actor, updated_at=now
        )
        draft.refresh_from_db()
        outbox_record(
            event_type="draft_order.finalized",
            aggregate=draft,
            payload={
                "draft_order_id": draft.pk,
                "order_id": order.pk,
                "invoice_id": invoice.pk,
                "actor_id": actor.pk if actor else None,
            },
        )
    return draft
