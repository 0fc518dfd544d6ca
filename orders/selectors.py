from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet, Sum
from django.http import HttpRequest

from common.db import PreparedQuery, relation_prefetched_set
from orders.models import PAID_STATES, Cart, CartLine, DraftOrder, Order, OrderStatus
from orders.pricing import Totals, totals_compute


def cart_for_request(*, request: HttpRequest, create: bool = True) -> Cart | None:
    """The signed-in user's cart, or the anonymous session's (created on first use)."""
    from orders.services import cart_get_or_create

    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return cart_get_or_create(user=user) if create else Cart.objects.filter(user=user).first()
    if request.session.session_key is None:
        if not create:
            return None
        request.session.save()
    session_key = request.session.session_key
    assert session_key is not None
    return (
        cart_get_or_create(session_key=session_key) if create else Cart.objects.filter(session_key=session_key).first()
    )


def cart_lines(*, cart: Cart) -> QuerySet[CartLine]:
    return cart.lines.select_related("product__stock").order_by("id")


def cart_item_count_for_request(*, request: HttpRequest) -> int:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        qs = CartLine.objects.filter(cart__user=user)
    elif getattr(request, "session", None) is not None and request.session.session_key:
        qs = CartLine.objects.filter(cart__session_key=request.session.session_key)
    else:
        return 0
    return int(qs.aggregate(n=Sum("quantity"))["n"] or 0)


def orders_visible_to(user: User | AnonymousUser) -> QuerySet[Order]:
    """Staff with the view permission see every order; anyone else only their own."""
    if not user.is_authenticated:
        return Order.objects.none()
    if user.is_staff and user.has_perm("orders.view_order"):
        return Order.objects.all()
    return Order.objects.filter(user=user)


def orders_for_list(*, user: User | AnonymousUser) -> QuerySet[Order]:
    return (
        orders_visible_to(user)
        .select_related("invoice")
        # "refunds": payments' reverse relation (an ORM name, not an import), for the
        # payment status of a shipped order refunded in part and for the timeline.
        .prefetch_related("lines", "payment_attempts", "refunds")
        .order_by("-created_at", "-id")
    )


_order_with_invoice_of_user = PreparedQuery(
    Order,
    lambda user_id, order_id: Order.objects.filter(user_id=user_id, pk=order_id).select_related("invoice"),
    user_id=int,
    order_id=int,
)


def order_with_invoice_for_user(*, user: User | AnonymousUser, order_id: int) -> Order:
    """The order and its invoice in one query, if `user` may see it (the invoice-block poll);
    Order.DoesNotExist otherwise. A shopper's, the poll every open order page makes, runs
    as a statement compiled once (orders_visible_to's filter for them)."""
    if user.is_authenticated and not user.is_staff:
        order = _order_with_invoice_of_user.first(user_id=user.pk, order_id=order_id)
        if order is None:
            raise Order.DoesNotExist("No such order.")
        return order
    return orders_visible_to(user).select_related("invoice").get(pk=order_id)


def order_get_for_user(*, user: User | AnonymousUser, order_id: int) -> Order:
    """The order if `user` may see it; Order.DoesNotExist otherwise (404, never its data)."""
    return orders_for_list(user=user).get(pk=order_id)


def order_id_for_user(*, user: User | AnonymousUser, order_id: int) -> int:
    """`order_id` if `user` may see that order, in one query that loads nothing (a view that
    only needs the id checked); Order.DoesNotExist otherwise (404, never its data)."""
    if not orders_visible_to(user).filter(pk=order_id).exists():
        raise Order.DoesNotExist("No such order.")
    return order_id


def order_just_placed(*, order: Order) -> Order:
    """The order checkout placed (its lines attached by checkout_place_order) in the
    caller's still open transaction, ready for its answer without a query: nobody else
    sees it before that commit, so it has no invoice, payment attempt or refund yet. The
    answer is the same as order_get_for_user's (orders/tests/test_checkout_api pins it)."""
    for name in ("payment_attempts", "refunds"):  # payments' reverse relations: ORM names, not imports
        relation_prefetched_set(instance=order, name=name, rows=[])
    Order.invoice.related.set_cached_value(order, None)
    return order


def _refunded_in_part(order: Order) -> bool:
    """A succeeded refund of one of the payments the order took (prefetched by orders_for_list)."""
    flagged = {a.pk for a in order.payment_attempts.all() if a.refund_required}
    refunds = getattr(order, "refunds").all()  # noqa: B009 (payments' reverse relation)
    return any(r.status == "succeeded" and r.attempt_id not in flagged for r in refunds)


def order_payment_status(*, order: Order) -> str:
    """unpaid | processing | failed | paid | partially_refunded | refunded, from the order
    and its attempts."""
    if order.status in PAID_STATES:
        return "partially_refunded" if _refunded_in_part(order) else "paid"
    if order.status in (OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED):
        return str(order.status)
    if order.status == OrderStatus.CANCELLED and any(
        a.status == "succeeded" and not a.refund_required for a in order.payment_attempts.all()
    ):
        # Cancelled after payment (staff cancel of a paid order): refunded in full.
        return "refunded"
    latest = latest_payment_attempt_status(order=order)
    if order.status == OrderStatus.PENDING_PAYMENT and latest in ("processing", "failed"):
        return latest
    if latest is not None and applying_payment(order=order, latest_status=latest):
        return "processing"
    return "unpaid"


def applying_payment(*, order: Order, latest_status: str, refund_required: bool = False) -> bool:
    """A storefront order awaiting payment whose latest attempt succeeded: its paid status
    commits with that success, so a page or answer that reads both saw a read overlap that
    commit (each statement sees what was committed when it began). It is being paid: shown
    as processing, so the page asks again. (A staff-billed order, placed at finalize, can
    await the rest of its invoice after a partial payment: that stays unpaid.)"""
    return (
        order.status == OrderStatus.PENDING_PAYMENT
        and order.placed_at is None
        and latest_status == "succeeded"
        and not refund_required
    )


def latest_payment_attempt_status(*, order: Order) -> str | None:
    """The newest payment attempt's status (uses a prefetched `payment_attempts` if present)."""
    attempts = getattr(order, "payment_attempts", None)
    if attempts is None:
        return None
    newest = max(attempts.all(), key=lambda a: (a.created_at, a.pk), default=None)
    return newest.status if newest is not None else None


@dataclass(frozen=True)
class CartView:
    """A cart with its lines and the totals checkout would charge (before any coupon)."""

    id: int
    currency: str
    lines: list[CartLine]
    item_count: int
    subtotal: Decimal
    discount: Decimal
    shipping: Decimal
    tax: Decimal
    total: Decimal


_cart_lines = PreparedQuery(
    CartLine,
    lambda cart_id: CartLine.objects.filter(cart_id=cart_id).select_related("product__stock").order_by("id"),
    cart_id=int,
)


def cart_view(*, cart: Cart, coupon: str = "") -> CartView:
    lines = _cart_lines(cart_id=cart.pk)  # cart_lines(), compiled once: every cart answer reads it
    for line in lines:
        CartLine.cart.field.set_cached_value(line, cart)
    currency = lines[0].product.currency if lines else settings.DEFAULT_CURRENCY
    totals = totals_compute(
        lines=[(line.product.price * line.quantity, line.product.tax_rate) for line in lines],
        currency=currency,
        coupon=coupon,
    )
    return CartView(
        id=cart.pk,
        currency=currency,
        lines=lines,
        item_count=sum(line.quantity for line in lines),
        subtotal=totals.subtotal,
        discount=totals.discount,
        shipping=totals.shipping,
        tax=totals.tax,
        total=totals.total,
    )


# --- Draft orders (staff billing) --------------------------------------------------------------


def draft_orders_for_staff() -> QuerySet[DraftOrder]:
    return (
        DraftOrder.objects.select_related("customer", "order__invoice")
        .prefetch_related("lines")
        .order_by("-created_at", "-id")
    )


def draft_order_get(*, draft_id: int) -> DraftOrder:
    """DraftOrder.DoesNotExist when missing (the API maps it to 404)."""
    return draft_orders_for_staff().get(pk=draft_id)


def draft_order_totals(*, draft: DraftOrder) -> Totals:
    """The totals finalizing would bill now (the lines' prices were copied when added)."""
    lines = list(draft.lines.all())
    return totals_compute(
        lines=[(line.line_total, line.tax_rate) for line in lines],
        currency=draft.currency,
        coupon=draft.coupon_code,
        shipping=draft.shipping,
    )


@dataclass(frozen=True)
class DraftOrderView:
    """A draft with its totals: computed while a draft, the billed ones once finalized."""

    draft: DraftOrder
    totals: Totals
    tax_by_rate: list[dict[str, Decimal]]
    invoice: Any


def draft_order_view(*, draft: DraftOrder) -> DraftOrderView:
    order = draft.order
    invoice = getattr(order, "invoice", None) if order is not None else None
    if order is not None and invoice is not None:
        rows = invoice.tax_rows
        totals = Totals(
            currency=order.currency,
            subtotal=order.subtotal,
            discount=order.discount,
            shipping=order.shipping,
            tax=order.tax,
            total=order.total,
            tax_by_rate={row["rate"]: row["tax"] for row in rows},
            net_by_rate={row["rate"]: row["net"] for row in rows},
        )
    else:
        totals = draft_order_totals(draft=draft)
        rows = [{"rate": rate, "net": net, "tax": totals.tax_by_rate[rate]} for rate, net in totals.net_by_rate.items()]
    return DraftOrderView(draft=draft, totals=totals, tax_by_rate=rows, invoice=invoice)


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # placed, paid, processing, shipped, delivered, cancelled, refund_*, partially_refunded, refunded
    label: str
    detail: str = ""
    link: str = ""  # the carrier's tracking page for "shipped"


_TIMELINE_LABELS = {
    "paid": "Paid",
    "processing": "Being prepared",
    "shipped": "Shipped",
    "delivered": "Delivered",
    "fulfilled": "Delivered",  # recorded before the lifecycle had shipped/delivered
    "cancelled": "Cancelled",
}


def order_timeline(*, order: Order) -> list[TimelineEntry]:
    """The order's story for its page, oldest first, from the recorded history: placed,
    paid, shipped (with tracking), delivered, cancelled, and each refund (through the
    payments app's reverse relation `refunds`: read, never imported). Two queries."""
    entries = [TimelineEntry(order.created_at, "placed", "Order placed")]
    for change in order.status_changes.all():
        label = _TIMELINE_LABELS.get(change.to_status)
        if label is None:  # refund states: the refunds below say more
            continue
        detail, link = "", ""
        if change.to_status == "shipped" and order.shipped_at is not None:
            detail = f"{order.shipping_carrier}, tracking {order.tracking_number}"
            link = order.tracking_url
        elif change.to_status == "cancelled":
            detail = change.reason
        entries.append(TimelineEntry(change.created_at, change.to_status, label, detail, link))
    for refund in getattr(order, "refunds").all():  # noqa: B009 (payments' reverse relation)
        amount = f"{refund.amount} {refund.currency}"
        entries.append(
            TimelineEntry(refund.created_at, "refund_requested", f"Refund of {amount} requested", refund.reason)
        )
        if refund.succeeded_at is not None:
            entries.append(TimelineEntry(refund.succeeded_at, "refund_succeeded", f"Refunded {amount}"))
        elif refund.failed_at is not None:
            entries.append(TimelineEntry(refund.failed_at, "refund_failed", f"Refund of {amount} failed"))
    return sorted(entries, key=lambda e: e.at)
