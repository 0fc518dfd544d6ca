"""Order writes: the cart, checkout, and the order state machine.

Lock order, everywhere: cart -> order -> reservations -> stock (by product id) -> invoice
sequence. Nothing takes an earlier lock while holding a later one.
"""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from common.errors import ApplicationError, IllegalTransition, NotFound, ValidationFailed
from inventory.models import Product, Stock
from inventory.services import reservations_commit, reservations_create, reservations_release, stock_reserve
from orders.models import ALLOWED_TRANSITIONS, Cart, CartLine, Order, OrderLine, OrderStatus, OrderStatusChange
from orders.pricing import totals_compute
from outbox.services import outbox_record


class CartEmpty(ApplicationError):
    status_code = 400
    code = "cart_empty"


class QuantityUnavailable(ApplicationError):
    status_code = 409
    code = "insufficient_stock"


# --- Cart ------------------------------------------------------------------------------------


def cart_get_or_create(*, user: User | None = None, session_key: str | None = None) -> Cart:
    """The cart of a signed-in user, or of an anonymous session."""
    if (user is None) == (session_key is None):
        raise ValueError("a cart belongs to a user or to a session")
    lookup: dict[str, Any] = {"user": user} if user is not None else {"session_key": session_key}
    try:
        cart, _ = Cart.objects.get_or_create(**lookup)
    except IntegrityError:  # a concurrent request created it first
        cart = Cart.objects.get(**lookup)
    return cart


def _validate_quantity(*, product: Product, quantity: int) -> None:
    if quantity <= 0:
        raise ValidationFailed("Quantity must be at least 1.", details={"quantity": ["Must be at least 1."]})
    if quantity > settings.CART_MAX_QUANTITY:
        raise ValidationFailed(
            f"Quantity must be at most {settings.CART_MAX_QUANTITY}.",
            details={"quantity": [f"Must be at most {settings.CART_MAX_QUANTITY}."]},
        )
    available = Stock.objects.filter(product=product).values_list("on_hand", "reserved").first()
    free = (available[0] - available[1]) if available else 0
    if quantity > free:
        raise QuantityUnavailable(
            f"Only {free} of {product.sku} available.",
            details={"skus": [product.sku], "lines": [{"sku": product.sku, "requested": quantity, "available": free}]},
        )


def _product_for_cart(*, sku: str) -> Product:
    product = Product.objects.filter(sku=sku, is_active=True).first()
    if product is None:
        raise NotFound(f"No product with SKU {sku!r}.", details={"sku": [f"Unknown SKU {sku!r}."]})
    return product


def cart_add_item(*, cart: Cart, sku: str, quantity: int) -> CartLine:
    """Add units of a product; an existing line grows. Refuses more than is available."""
    product = _product_for_cart(sku=sku)
    with transaction.atomic():
        Cart.objects.select_for_update().filter(pk=cart.pk).first()
        line = CartLine.objects.filter(cart=cart, product=product).first()
        new_quantity = quantity + (line.quantity if line else 0)
        if quantity <= 0:
            _validate_quantity(product=product, quantity=quantity)
        _validate_quantity(product=product, quantity=new_quantity)
        if line is None:
            line = CartLine.objects.create(cart=cart, product=product, quantity=new_quantity)
        else:
            line.quantity = new_quantity
            line.save(update_fields=["quantity", "updated_at"])
        Cart.objects.filter(pk=cart.pk).update(updated_at=timezone.now())
    return line


def cart_update_line(*, cart: Cart, line_id: int, quantity: int) -> CartLine:
    line = CartLine.objects.select_related("product").filter(cart=cart, pk=line_id).first()
    if line is None:
        raise NotFound("No such line in your cart.")
    _validate_quantity(product=line.product, quantity=quantity)
    line.quantity = quantity
    line.save(update_fields=["quantity", "updated_at"])
    return line


def cart_remove_line(*, cart: Cart, line_id: int) -> None:
    deleted, _ = CartLine.objects.filter(cart=cart, pk=line_id).delete()
    if not deleted:
        raise NotFound("No such line in your cart.")


def cart_clear(*, cart: Cart) -> None:
    CartLine.objects.filter(cart=cart).delete()


def cart_merge(*, session_key: str, user: User) -> Cart:
    """Fold an anonymous session's cart into the user's cart on sign-in: quantities are
    added, capped by what is available (and the per-line maximum)."""
    user_cart = cart_get_or_create(user=user)
    with transaction.atomic():
        anonymous = Cart.objects.select_for_update().filter(session_key=session_key).first()
        if anonymous is None:
            return user_cart
        Cart.objects.select_for_update().filter(pk=user_cart.pk).first()
        for line in anonymous.lines.select_related("product__stock"):
            existing = CartLine.objects.filter(cart=user_cart, product=line.product).first()
            stock = line.product.stock
            cap = min(stock.on_hand - stock.reserved, settings.CART_MAX_QUANTITY)
            quantity = min((existing.quantity if existing else 0) + line.quantity, cap)
            if quantity <= 0:
                continue
            CartLine.objects.update_or_create(cart=user_cart, product=line.product, defaults={"quantity": quantity})
        anonymous.delete()
    return user_cart


# --- Checkout --------------------------------------------------------------------------------


def checkout_place_order(*, cart: Cart, user: User, shipping_address: dict[str, str], coupon: str = "") -> Order:
    """Turn the cart into an order awaiting payment, holding stock for every line.

    One transaction: lock the cart, snapshot lines and prices, reserve stock (all or
    nothing), record `order.created`, empty the cart. Raises CartEmpty, ValidationFailed
    (coupon, mixed currencies) or InsufficientStock naming the short SKUs; then nothing
    is reserved and the cart is untouched.
    """
    with transaction.atomic():
        locked = Cart.objects.select_for_update().filter(pk=cart.pk).first()
        if locked is None:
            raise CartEmpty("Your cart is empty.")
        lines = list(CartLine.objects.filter(cart=locked).select_related("product").order_by("product_id"))
        if not lines:
            raise CartEmpty("Your cart is empty.")
        inactive = [line.product.sku for line in lines if not line.product.is_active]
        if inactive:
            raise ValidationFailed("Some products are no longer sold.", details={"skus": inactive})
        currencies = {line.product.currency for line in lines}
        if len(currencies) != 1:
            raise ValidationFailed("All products in one order must share a currency.")
        currency = currencies.pop()

        stock_reserve(quantities={line.product_id: line.quantity for line in lines})

        priced = [(line.product.price * line.quantity, line.product.tax_rate) for line in lines]
        totals = totals_compute(lines=priced, currency=currency, coupon=coupon)
        now = timezone.now()
        expires_at = now + settings.RESERVATION_TTL
        order = Order.objects.create(
            user=user,
            status=OrderStatus.PENDING_PAYMENT,
            currency=currency,
            subtotal=totals.subtotal,
            discount=totals.discount,
            shipping=totals.shipping,
            tax=totals.tax,
            total=totals.total,
            coupon_code=coupon.strip().upper(),
            shipping_address=shipping_address,
            reservation_expires_at=expires_at,
        )
        order_lines = OrderLine.objects.bulk_create(
            OrderLine(
                order=order,
                product=line.product,
                sku=line.product.sku,
                name=line.product.name,
                quantity=line.quantity,
                unit_price=line.product.price,
                tax_rate=line.product.tax_rate,
                line_total=line.product.price * line.quantity,
            )
            for line in lines
        )
        reservations_create(
            lines=[(ol.pk, ol.product_id, ol.quantity) for ol in order_lines if ol.product_id is not None],
            expires_at=expires_at,
        )
        OrderStatusChange.objects.create(order=order, from_status="", to_status=order.status, reason="checkout")
        outbox_record(
            event_type="order.created",
            aggregate=order,
            payload={
                "order_id": order.pk,
                "user_id": user.pk,
                "currency": currency,
                "total": order.total,
                "lines": [{"sku": ol.sku, "quantity": ol.quantity, "unit_price": ol.unit_price} for ol in order_lines],
            },
        )
        CartLine.objects.filter(cart=locked).delete()
    return order


# --- State machine ---------------------------------------------------------------------------


def order_transition(*, order: Order, to: str, reason: str = "", actor: User | None = None) -> Order:
    """Move `order` to status `to`, or raise IllegalTransition with nothing changed.

    The UPDATE is guarded by the current status, so a concurrent move wins once; the
    loser sees IllegalTransition. Records the change and an `order.<to>` OutboxEvent.
    """
    from_status = order.status
    if to not in ALLOWED_TRANSITIONS.get(from_status, set()):
        raise IllegalTransition(
            f"An order cannot go from {from_status} to {to}.",
            details={"from": from_status, "to": to},
        )
    with transaction.atomic():
        updated = Order.objects.filter(pk=order.pk, status=from_status).update(status=to, updated_at=timezone.now())
        if not updated:
            current = Order.objects.filter(pk=order.pk).values_list("status", flat=True).first()
            raise IllegalTransition(
                f"The order is {current}, not {from_status}; it cannot go to {to}.",
                details={"from": current, "to": to},
            )
        order.status = to
        OrderStatusChange.objects.create(
            order=order, from_status=from_status, to_status=to, reason=reason[:200], actor=actor
        )
        outbox_record(
            event_type=f"order.{to}",
            aggregate=order,
            payload={"order_id": order.pk, "from": from_status, "to": to, "reason": reason},
        )
    return order


def order_lock(*, order_id: int) -> Order:
    """Lock an order row (the second lock of the fixed order, after the cart)."""
    return Order.objects.select_for_update().get(pk=order_id)


def order_mark_paid(*, order_id: int, reason: str = "payment succeeded") -> Order:
    """Place a storefront order: paid, stock committed, invoice created, all in one
    transaction (the invoice gets its number later, from a worker)."""
    from invoicing.services import invoice_create_for_order

    with transaction.atomic():
        order = order_lock(order_id=order_id)
        order_transition(order=order, to=OrderStatus.PAID, reason=reason)
        reservations_commit(order_id=order.pk)
        Order.objects.filter(pk=order.pk).update(placed_at=timezone.now(), reservation_expires_at=None)
        invoice_create_for_order(order=order)
    return order


def order_cancel(*, order_id: int, reason: str, actor: User | None = None) -> Order:
    """Cancel an unpaid order and give its stock back."""
    with transaction.atomic():
        order = order_lock(order_id=order_id)
        order_transition(order=order, to=OrderStatus.CANCELLED, reason=reason, actor=actor)
        reservations_release(order_id=order.pk)
        Order.objects.filter(pk=order.pk).update(reservation_expires_at=None)
    return order


def orders_expire_unpaid(*, now: datetime | None = None, batch_size: int | None = None) -> int:
    """Cancel pending orders whose reservation has expired and release their stock.

    Works in batches; rows another transaction holds (a payment being applied) are
    skipped, not waited for, and are picked up by the next run. Returns how many went.
    """
    now = now or timezone.now()
    batch_size = batch_size or settings.RESERVATION_EXPIRY_BATCH
    expired = 0
    while True:
        with transaction.atomic():
            batch = list(
                order_expirable(now=now)
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("reservation_expires_at", "id")[:batch_size]
            )
            for order in batch:
                order_transition(order=order, to=OrderStatus.CANCELLED, reason="reservation expired")
                reservations_release(order_id=order.pk)
            Order.objects.filter(pk__in=[o.pk for o in batch]).update(reservation_expires_at=None)
        expired += len(batch)
        if len(batch) < batch_size:
            return expired


def order_expirable(*, now: datetime) -> QuerySet[Order]:
    """Pending orders whose reservation has run out, unless a payment attempt is still
    processing (the payment timeout task fails it first; then the order can expire)."""
    return Order.objects.filter(status=OrderStatus.PENDING_PAYMENT, reservation_expires_at__lte=now).exclude(
        payment_attempts__status="processing"
    )
