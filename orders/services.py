"""Order writes: the cart, checkout, and the order state machine.

Locks follow the one order written in flows/__init__.py (cart -> draft -> order -> ... ->
stock by product id -> number sequence): nothing takes an earlier lock while holding a later one.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from common.db import (
    PreparedQuery,
    RowLookup,
    atomic_joined,
    instance_insert,
    instances_insert,
    relation_prefetched_set,
    rows_update,
)
from common.errors import ApplicationError, IllegalTransition, NotFound, ValidationFailed
from common.money import money_round
from inventory.models import Product, Stock
from inventory.services import (
    InsufficientStock,
    reservations_commit,
    reservations_create,
    reservations_release,
    stock_reserve,
)
from orders.locks import cart_lock, cart_lock_by_session, cart_lock_of_user, cart_touch, draft_lock, order_lock
from orders.models import (
    ALLOWED_TRANSITIONS,
    Cart,
    CartLine,
    DraftOrder,
    DraftOrderLine,
    DraftOrderStatus,
    Order,
    OrderLine,
    OrderStatus,
    OrderStatusChange,
)
from orders.pricing import Totals, coupon_discount, totals_compute
from outbox.services import outbox_record


class CartEmpty(ApplicationError):
    status_code = 400
    code = "cart_empty"


# --- Cart ------------------------------------------------------------------------------------


_cart_of_user = RowLookup(Cart, "user")


def cart_get_or_create(*, user: User | None = None, session_key: str | None = None) -> Cart:
    """The cart of a signed-in user, or of an anonymous session."""
    if (user is None) == (session_key is None):
        raise ValueError("a cart belongs to a user or to a session")
    if user is not None and (cart := _cart_of_user(user.pk)) is not None:
        return cart
    lookup: dict[str, Any] = {"user": user} if user is not None else {"session_key": session_key}
    try:
        cart, _ = Cart.objects.get_or_create(**lookup)
    except IntegrityError:  # a concurrent request created it first
        cart = Cart.objects.get(**lookup)
    return cart


def _validate_quantity(*, product: Product, quantity: int) -> None:
    limit = settings.CART_MAX_QUANTITY
    if quantity <= 0:
        raise ValidationFailed(
            f"Quantity of {product.name} must be at least 1.", details={"quantity": ["Must be at least 1."]}
        )
    if quantity > limit:
        raise ValidationFailed(
            f"At most {limit} of {product.name} per order line (you asked for {quantity}).",
            details={"quantity": [f"Must be at most {limit}."]},
        )
    free = _free_stock(product=product)
    if quantity > free:
        raise InsufficientStock(
            f"Only {max(free, 0)} of {product.name} available (you asked for {quantity}).",
            details={"skus": [product.sku], "lines": [{"sku": product.sku, "requested": quantity, "available": free}]},
        )


def _free_stock(*, product: Product) -> int:
    """What is not reserved: advisory here (checkout reserves under the stock row's guard),
    so the stock row loaded with the product (_product_for_cart) is as good as a new read."""
    if Product.stock.related.is_cached(product):
        stock = getattr(product, "stock", None)
        return (stock.on_hand - stock.reserved) if stock is not None else 0
    available = Stock.objects.filter(product=product).values_list("on_hand", "reserved").first()
    return (available[0] - available[1]) if available else 0


_product_on_sale = PreparedQuery(
    Product, lambda sku: Product.objects.select_related("stock").filter(sku=sku, is_active=True), sku=str
)


def _product_for_cart(*, sku: str) -> Product:
    product = _product_on_sale.first(sku=sku)  # the SKU is unique
    if product is None:
        raise NotFound(f"No product with SKU {sku!r}.", details={"sku": [f"Unknown SKU {sku!r}."]})
    return product


def cart_add_item(*, cart: Cart, sku: str, quantity: int) -> CartLine:
    """Add units of a product; an existing line grows. Refuses more than is available."""
    product = _product_for_cart(sku=sku)
    if quantity <= 0:
        _validate_quantity(product=product, quantity=quantity)
    with transaction.atomic():
        cart_touch(cart_id=cart.pk)  # the cart's row lock, as cart_lock takes it
        line = _cart_line_grow(cart=cart, product=product, quantity=quantity)
        _validate_quantity(product=product, quantity=line.quantity)  # too many: rolled back
    return line


_CART_LINE_GROW = (  # orders_cartline: CartLine._meta.db_table (test_cart pins it)
    'INSERT INTO "orders_cartline" ("created_at", "updated_at", "cart_id", "product_id", "quantity") '
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (cart_id, product_id) DO UPDATE "
    'SET "quantity" = "orders_cartline"."quantity" + EXCLUDED."quantity", "updated_at" = EXCLUDED."updated_at" '
    'RETURNING "id", "created_at", "quantity"'
)


def _cart_line_grow(*, cart: Cart, product: Product, quantity: int) -> CartLine:
    """The cart's line of `product` grown by `quantity`, or a new line: one statement on the
    (cart, product) unique constraint instead of a SELECT, then an INSERT or an UPDATE."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_CART_LINE_GROW, [now, now, cart.pk, product.pk, quantity])
        pk, created_at, total = cursor.fetchone()
    created = CartLine._meta.get_field("created_at").get_col(CartLine._meta.db_table)
    for convert in connection.ops.get_db_converters(created) + created.get_db_converters(connection):
        created_at = convert(created_at, created, connection)  # SQLite answers text, as the ORM reads it
    line = CartLine(pk=pk, created_at=created_at, updated_at=now, cart=cart, product=product, quantity=total)
    line._state.adding, line._state.db = False, connection.alias
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
        anonymous = cart_lock_by_session(session_key=session_key)
        if anonymous is None:
            return user_cart
        cart_lock(cart_id=user_cart.pk)
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


def order_place(
    *,
    user: User,
    totals: Totals,
    coupon_code: str,
    shipping_address: dict[str, str],
    lines: list[OrderLine],
    reservation_expires_at: datetime | None,
    email: str = "",
    reason: str,
    placed_at: datetime | None = None,
    actor: User | None = None,
    event_extra: dict[str, Any] | None = None,
) -> tuple[Order, list[OrderLine]]:
    """Create an order awaiting payment with its lines (unsaved OrderLine objects), record
    the holds already taken by stock_reserve, the first status row and `order.created`.
    Shared by checkout and draft finalization; runs in the caller's transaction.

    `reservation_expires_at=None` means the holds never expire (staff-billed orders)."""
    order = instance_insert(
        Order(
            user=user,
            status=OrderStatus.PENDING_PAYMENT,
            currency=totals.currency,
            subtotal=totals.subtotal,
            discount=totals.discount,
            shipping=totals.shipping,
            tax=totals.tax,
            total=totals.total,
            coupon_code=coupon_code.strip().upper(),
            shipping_address=shipping_address,
            email=email or user.email,
            reservation_expires_at=reservation_expires_at,
            placed_at=placed_at,
        )
    )
    for line in lines:
        line.order = order
    order_lines = instances_insert(lines)
    reservations_create(
        lines=[(ol.pk, ol.product_id, ol.quantity) for ol in order_lines if ol.product_id is not None],
        expires_at=reservation_expires_at or RESERVATION_NO_EXPIRY,
    )
    instance_insert(OrderStatusChange(order=order, from_status="", to_status=order.status, reason=reason, actor=actor))
    outbox_record(
        event_type="order.created",
        aggregate=order,
        payload={
            "order_id": order.pk,
            "user_id": user.pk,
            "currency": order.currency,
            "total": order.total,
            **(event_extra or {}),
            "lines": [{"sku": ol.sku, "quantity": ol.quantity, "unit_price": ol.unit_price} for ol in order_lines],
        },
    )
    return order, order_lines


_cart_lines_by_product = PreparedQuery(
    CartLine,
    lambda cart_id: CartLine.objects.filter(cart_id=cart_id).select_related("product").order_by("product_id"),
    cart_id=int,
)


def checkout_place_order(
    *, user: User, shipping_address: dict[str, str], coupon: str = "", email: str = "", cart: Cart | None = None
) -> Order:
    """Turn the cart (the user's own when `cart` is not given) into an order awaiting
    payment, holding stock for every line. Its e-mails go to `email` (the account's address
    when empty).

    One transaction: lock the cart, snapshot lines and prices, reserve stock (all or
    nothing), record `order.created`, empty the cart. Raises CartEmpty, ValidationFailed
    (coupon, mixed currencies) or InsufficientStock naming the short SKUs; then nothing
    is reserved and the cart is untouched.
    """
    with transaction.atomic():
        locked = cart_lock(cart_id=cart.pk) if cart is not None else cart_lock_of_user(user_id=user.pk)
        if locked is None:
            raise CartEmpty("Your cart is empty.")
        lines = _cart_lines_by_product(cart_id=locked.pk)
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
        order, order_lines = order_place(
            user=user,
            totals=totals,
            coupon_code=coupon,
            shipping_address=shipping_address,
            lines=[
                OrderLine(
                    product=line.product,
                    sku=line.product.sku,
                    name=line.product.name,
                    quantity=line.quantity,
                    unit_price=line.product.price,
                    tax_rate=line.product.tax_rate,
                    line_total=line.product.price * line.quantity,
                )
                for line in lines
            ],
            reservation_expires_at=timezone.now() + settings.RESERVATION_TTL,
            reason="checkout",
            email=email,
        )
        CartLine.objects.filter(cart=locked).delete()
    # Lines are a snapshot, never edited: the caller reads them without a query.
    relation_prefetched_set(instance=order, name="lines", rows=order_lines)
    return order


# --- State machine ---------------------------------------------------------------------------


def order_transition(
    *, order: Order, to: str, reason: str = "", actor: User | None = None, also: dict[str, Any] | None = None
) -> Order:
    """Move `order` to status `to`, or raise IllegalTransition with nothing changed.

    The UPDATE is guarded by the current status, so a concurrent move wins once; the
    loser sees IllegalTransition. Records the change and an `order.<to>` OutboxEvent.
    `also`: more columns set by the same UPDATE (plain values: the caller holds the row lock).
    """
    from_status = order.status
    if to not in ALLOWED_TRANSITIONS.get(from_status, set()):
        raise IllegalTransition(
            f"An order cannot go from {from_status} to {to}.",
            details={"from": from_status, "to": to},
        )
    with atomic_joined():  # IllegalTransition is raised before anything is written
        updated = rows_update(
            Order,
            where={"pk": order.pk, "status": from_status},
            values={"status": to, "updated_at": timezone.now(), **(also or {})},
        )
        if not updated:
            current = Order.objects.filter(pk=order.pk).values_list("status", flat=True).first()
            raise IllegalTransition(
                f"The order is {current}, not {from_status}; it cannot go to {to}.",
                details={"from": current, "to": to},
            )
        order.status = to
        instance_insert(
            OrderStatusChange(order=order, from_status=from_status, to_status=to, reason=reason[:200], actor=actor)
        )
        outbox_record(
            event_type=f"order.{to}",
            aggregate=order,
            payload={"order_id": order.pk, "from": from_status, "to": to, "reason": reason},
        )
    return order


def order_mark_paid(*, order_id: int, reason: str = "payment succeeded", locked: Order | None = None) -> Order:
    """The orders part of "money arrived": paid, stock committed, placed. The whole flow
    (with the invoice) is flows.order_paid.order_place_paid. `locked`: the order as the
    caller's transaction already locked it (the webhook's), not locked again."""
    with atomic_joined():
        order = locked if locked is not None else order_lock(order_id=order_id)
        assert order.pk == order_id, "locked is the order being paid"
        now = timezone.now()
        # A staff-billed order was placed when finalized; a storefront order is placed now
        # (the row is locked: its placed_at as read is current).
        also = {"placed_at": order.placed_at or now, "reservation_expires_at": None}
        order_transition(order=order, to=OrderStatus.PAID, reason=reason, also=also)
        order.placed_at, order.reservation_expires_at = order.placed_at or now, None
        reservations_commit(order_id=order.pk)
    return order


def order_cancel(*, order_id: int, reason: str, actor: User | None = None) -> Order:
    """Cancel an unpaid order and give its stock back at once. Raises IllegalTransition
    unless it awaits payment. (Whether a payment attempt blocks it is the caller's check:
    flows.order_cancel; a paid order is cancelled by refunding it there too.)"""
    with transaction.atomic():
        order = order_lock(order_id=order_id)
        if order.status != OrderStatus.PENDING_PAYMENT:
            # The table lets a paid order end cancelled, but only through its full refund.
            raise IllegalTransition(
                f"Order #{order.pk} is {order.status}; only an unpaid order is cancelled without a refund.",
                details={"from": order.status, "to": OrderStatus.CANCELLED},
            )
        order_transition(order=order, to=OrderStatus.CANCELLED, reason=reason, actor=actor)
        reservations_release(order_id=order.pk)
        Order.objects.filter(pk=order.pk).update(reservation_expires_at=None)
    return order


class ShipmentInvalid(ValidationFailed):
    pass


def _staff_move(*, order_id: int, to: str, reason: str, actor: User | None, **fields: Any) -> Order:
    with transaction.atomic():
        try:
            order = order_lock(order_id=order_id)
        except Order.DoesNotExist:
            raise NotFound("No such order.") from None
        order_transition(order=order, to=to, reason=reason, actor=actor)
        if fields:
            Order.objects.filter(pk=order.pk).update(**fields)
            for name, value in fields.items():
                setattr(order, name, value)
    return order


def order_start_processing(*, order_id: int, actor: User | None = None) -> Order:
    """Staff: a paid order is being picked and packed. Raises IllegalTransition otherwise."""
    return _staff_move(order_id=order_id, to=OrderStatus.PROCESSING, reason="processing", actor=actor)


def order_ship(
    *, order_id: int, carrier: str, tracking_number: str, tracking_url: str = "", actor: User | None = None
) -> Order:
    """Staff: a paid (or processing, or partly refunded) order left the warehouse.

    Records carrier and tracking on the order (read by the order.shipped e-mail). Raises
    ValidationFailed (no carrier or tracking number, a tracking URL that is not http(s)),
    IllegalTransition (cancelled, unpaid, already shipped), NotFound; nothing changes then.
    """
    carrier, tracking_number, tracking_url = carrier.strip(), tracking_number.strip(), tracking_url.strip()
    problems: dict[str, list[str]] = {}
    if not carrier:
        problems["carrier"] = ["Required."]
    if not tracking_number:
        problems["tracking_number"] = ["Required."]
    if tracking_url and not tracking_url.lower().startswith(("https://", "http://")):
        problems["tracking_url"] = ["Must be an http(s) URL."]
    if len(carrier) > 100 or len(tracking_number) > 100 or len(tracking_url) > 500:
        problems["length"] = ["carrier and tracking_number at most 100 characters, tracking_url 500."]
    if problems:
        raise ShipmentInvalid("The shipment is not valid; see details.", details=problems)
    return _staff_move(
        order_id=order_id,
        to=OrderStatus.SHIPPED,
        reason=f"shipped with {carrier}, tracking {tracking_number}",
        actor=actor,
        shipping_carrier=carrier,
        tracking_number=tracking_number,
        tracking_url=tracking_url,
        shipped_at=timezone.now(),
    )


def order_deliver(*, order_id: int, actor: User | None = None) -> Order:
    """Staff: a shipped order arrived. Raises IllegalTransition unless it is shipped."""
    return _staff_move(
        order_id=order_id, to=OrderStatus.DELIVERED, reason="delivered", actor=actor, delivered_at=timezone.now()
    )


def order_record_refund(
    *, order: Order, fully_refunded: bool, cancels: bool, reason: str, actor: User | None = None
) -> Order:
    """The orders part of a refund that succeeded (flows.refund_succeeded; the order is
    locked by the caller): partially_refunded, refunded, or cancelled for a staff cancel of
    a paid order. An order already cancelled stays so (a refund that finished after it)."""
    if order.status == OrderStatus.CANCELLED:
        return order
    if cancels and fully_refunded:
        to = OrderStatus.CANCELLED
    else:
        to = OrderStatus.REFUNDED if fully_refunded else OrderStatus.PARTIALLY_REFUNDED
    order_transition(order=order, to=to, reason=reason, actor=actor)
    if to == OrderStatus.CANCELLED:
        Order.objects.filter(pk=order.pk).update(reservation_expires_at=None)
    return order


# Test seam (None in production: one comparison per batch). Called with the ids of the batch
# the expiry has just locked, before it re-reads which of them have a processing attempt. The
# race that re-read closes sits inside the locking statement (an attempt committed after its
# snapshot, before its SKIP LOCKED row lock), where no test can reach; this is the first
# point after it. orders/tests/test_guards.py sets it.
_after_expiry_batch_locked: Callable[[list[int]], None] | None = None


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
            if _after_expiry_batch_locked is not None:
                _after_expiry_batch_locked([o.pk for o in batch])
            # The exclusion above saw the snapshot taken when the statement began; an attempt
            # committed just before the row locks were granted is seen by this fresh statement.
            # (Creating an attempt locks the order, so none can appear while the locks are held.)
            paying = set(
                Order.objects.filter(pk__in=[o.pk for o in batch], payment_attempts__status="processing").values_list(
                    "pk", flat=True
                )
            )
            locked = len(batch)
            batch = [o for o in batch if o.pk not in paying]
            for order in batch:
                order_transition(order=order, to=OrderStatus.CANCELLED, reason="reservation expired")
                reservations_release(order_id=order.pk)
            Order.objects.filter(pk__in=[o.pk for o in batch]).update(reservation_expires_at=None)
        expired += len(batch)
        if locked < batch_size:
            return expired


def order_expirable(*, now: datetime) -> QuerySet[Order]:
    """Pending orders whose reservation has run out, unless a payment attempt is still
    processing (the payment timeout task fails it first; then the order can expire)."""
    return Order.objects.filter(status=OrderStatus.PENDING_PAYMENT, reservation_expires_at__lte=now).exclude(
        payment_attempts__status="processing"
    )


# --- Draft orders (staff billing) --------------------------------------------------------------

# A finalized draft order holds its stock until it is paid (committed) or its invoice is voided
# (released); the reservation sweeper only looks at orders with `reservation_expires_at`, which
# a staff-billed order never has. Reservation.expires_at is required: this is "never".
RESERVATION_NO_EXPIRY = datetime(9999, 12, 31, tzinfo=UTC)


@dataclass(frozen=True)
class DraftLineSpec:
    """A line to bill: a catalog SKU (price, tax rate and name from the catalog unless
    given), or free text with description, unit price and tax rate."""

    quantity: int
    sku: str = ""
    description: str = ""
    unit_price: Decimal | None = None
    tax_rate: Decimal | None = None


def _draft_lines_build(*, draft: DraftOrder, specs: list[DraftLineSpec]) -> list[DraftOrderLine]:
    """Validate specs into unsaved lines; every problem is reported at once, by line index."""
    skus = {spec.sku for spec in specs if spec.sku}
    products = {p.sku: p for p in Product.objects.filter(sku__in=skus)}
    errors: dict[str, dict[str, list[str]]] = {}
    lines = []
    for index, spec in enumerate(specs):
        problems: dict[str, list[str]] = {}
        product = products.get(spec.sku) if spec.sku else None
        if spec.quantity <= 0:
            problems["quantity"] = ["Must be at least 1."]
        if spec.sku:
            if product is None or not product.is_active:
                problems["sku"] = [f"Unknown or inactive SKU {spec.sku!r}."]
            elif product.currency != draft.currency:
                problems["sku"] = [f"{spec.sku} is priced in {product.currency}, the draft in {draft.currency}."]
        else:
            if not spec.description.strip():
                problems["description"] = ["A line without a SKU needs a description."]
            if spec.unit_price is None:
                problems["unit_price"] = ["A line without a SKU needs a unit price."]
            if spec.tax_rate is None:
                problems["tax_rate"] = ["A line without a SKU needs a tax rate."]
        unit_price = spec.unit_price if spec.unit_price is not None else (product.price if product else None)
        tax_rate = spec.tax_rate if spec.tax_rate is not None else (product.tax_rate if product else None)
        if unit_price is not None and (unit_price < 0 or unit_price != money_round(unit_price, draft.currency)):
            problems["unit_price"] = [f"Must be zero or more, in whole minor units of {draft.currency}."]
        if tax_rate is not None and not (Decimal(0) <= tax_rate < 1):
            problems["tax_rate"] = ["Must be a fraction from 0 to below 1 (0.20 is 20%)."]
        if problems:
            errors[str(index)] = problems
            continue
        assert unit_price is not None
        assert tax_rate is not None
        lines.append(
            DraftOrderLine(
                draft=draft,
                product=product,
                sku=product.sku if product else "",
                description=(spec.description.strip() or (product.name if product else ""))[:200],
                quantity=spec.quantity,
                unit_price=unit_price,
                tax_rate=tax_rate,
            )
        )
    if errors:
        raise ValidationFailed("Some lines are not valid; see details.", details={"lines": errors})
    return lines


def draft_lock_open(*, draft_id: int) -> DraftOrder:
    """Lock a draft that can still change; NotFound or IllegalTransition otherwise."""
    draft = draft_lock(draft_id=draft_id)
    if draft is None:
        raise NotFound("No such draft order.")
    if draft.status != DraftOrderStatus.DRAFT:
        raise IllegalTransition(
            f"Draft order #{draft.pk} is {draft.status}; it can no longer change.",
            details={"from": draft.status, "draft_order_id": draft.pk},
        )
    return draft


def draft_order_create(
    *,
    customer: User,
    lines: list[DraftLineSpec],
    actor: User | None = None,
    currency: str = "",
    due_days: int | None = None,
    allow_partial: bool = False,
    notes: str = "",
    shipping: Decimal = Decimal("0.00"),
    coupon: str = "",
) -> DraftOrder:
    """A draft order for `customer` with its lines. The currency defaults to the first
    catalog line's (else DEFAULT_CURRENCY). Raises ValidationFailed naming bad lines."""
    if not currency:
        skus = [spec.sku for spec in lines if spec.sku]
        by_sku = dict(Product.objects.filter(sku__in=skus).values_list("sku", "currency"))
        currency = next((by_sku[s] for s in skus if s in by_sku), settings.DEFAULT_CURRENCY)
    with transaction.atomic():
        draft = DraftOrder(
            customer=customer,
            currency=currency.upper(),
            due_days=due_days,
            allow_partial=allow_partial,
            notes=notes,
            shipping=money_round(shipping, currency),
            coupon_code=coupon.strip().upper(),
            created_by=actor,
        )
        _draft_validate(draft=draft)
        draft.save()
        DraftOrderLine.objects.bulk_create(_draft_lines_build(draft=draft, specs=lines))
        outbox_record(
            event_type="draft_order.created",
            aggregate=draft,
            payload={"draft_order_id": draft.pk, "customer_id": customer.pk, "actor_id": actor.pk if actor else None},
        )
    return draft


def _draft_validate(*, draft: DraftOrder) -> None:
    if draft.shipping < 0:
        raise ValidationFailed("Shipping cannot be negative.", details={"shipping": ["Must be zero or more."]})
    if draft.coupon_code:
        coupon_discount(code=draft.coupon_code, subtotal=Decimal(0), currency=draft.currency)  # known code?


def draft_order_update(*, draft_id: int, actor: User | None = None, **changes: Any) -> DraftOrder:
    """Change a draft's header fields (customer, currency, due_days, allow_partial, notes,
    shipping, coupon_code). Refuses a finalized draft (IllegalTransition)."""
    allowed = {"customer", "currency", "due_days", "allow_partial", "notes", "shipping", "coupon_code"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"not draft fields: {sorted(unknown)}")
    with transaction.atomic():
        draft = draft_lock_open(draft_id=draft_id)
        for name, value in changes.items():
            setattr(draft, name, value)
        draft.coupon_code = draft.coupon_code.strip().upper()
        _draft_validate(draft=draft)
        draft.save()
    return draft


def draft_order_set_lines(*, draft_id: int, lines: list[DraftLineSpec]) -> list[DraftOrderLine]:
    """Replace a draft's lines (catalog data is copied now: the totals staff review are the
    totals billed). Refuses a finalized draft (IllegalTransition) or bad lines."""
    with transaction.atomic():
        draft = draft_lock_open(draft_id=draft_id)
        built = _draft_lines_build(draft=draft, specs=lines)
        DraftOrderLine.objects.filter(draft=draft).delete()
        return DraftOrderLine.objects.bulk_create(built)


def draft_order_delete(*, draft_id: int) -> None:
    """Discard a draft that was never finalized."""
    with transaction.atomic():
        draft = draft_lock_open(draft_id=draft_id)
        draft.delete()


def draft_order_create_from_order(*, order_id: int, actor: User | None = None) -> DraftOrder:
    """A new draft with an order's customer, lines and terms: the correction path after a
    void (an issued invoice is never edited). Prices are the order's, not today's."""
    order = Order.objects.select_related("invoice").prefetch_related("lines").get(pk=order_id)
    invoice = getattr(order, "invoice", None)
    draft = getattr(order, "draft", None)
    specs = [
        DraftLineSpec(
            quantity=line.quantity,
            sku=line.sku if line.product_id else "",
            description=line.name,
            unit_price=line.unit_price,
            tax_rate=line.tax_rate,
        )
        for line in order.lines.all()
    ]
    return draft_order_create(
        customer=order.user,
        lines=specs,
        actor=actor,
        currency=order.currency,
        due_days=draft.due_days if draft is not None else None,
        allow_partial=invoice.allow_partial if invoice is not None else False,
        notes=invoice.notes if invoice is not None else "",
        shipping=order.shipping,
        coupon=order.coupon_code,
    )
