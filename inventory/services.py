"""Stock writes. Every function here runs inside the caller's transaction and touches
Stock rows in product-id order, so concurrent callers never deadlock on each other."""

from collections.abc import Iterable
from datetime import datetime
from pathlib import PurePosixPath

from django.core.files import File
from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from common.db import instances_insert
from common.errors import Conflict, ValidationFailed
from inventory.images import image_thumbnail
from inventory.locks import reservations_finish_active
from inventory.models import Product, Reservation, ReservationStatus, Stock


class InsufficientStock(Conflict):
    code = "insufficient_stock"


def _require_transaction() -> None:
    if not connection.in_atomic_block:
        raise RuntimeError("stock changes must run inside transaction.atomic()")


# The stock writes of the order flow, built once (the ORM would compile each F() expression
# on every call): each changes one product's row, called in product-id order.
_STOCK_RESERVE = (
    'UPDATE "inventory_stock" SET "reserved" = "reserved" + %s WHERE "product_id" = %s AND "on_hand" >= "reserved" + %s'
)
_STOCK_SELL = (
    'UPDATE "inventory_stock" SET "on_hand" = "on_hand" - %s, "reserved" = "reserved" - %s WHERE "product_id" = %s'
)
_STOCK_UNRESERVE = 'UPDATE "inventory_stock" SET "reserved" = "reserved" - %s WHERE "product_id" = %s'


def stock_reserve(*, quantities: dict[int, int]) -> None:
    """Hold `quantities` (product id -> units) or hold nothing.

    Each product is checked and changed in one conditional UPDATE (never read-then-write);
    PostgreSQL re-checks the condition after waiting on a concurrent writer's row lock.
    Raises InsufficientStock naming every short SKU; the caller's transaction must then
    roll back, which undoes the holds already taken.
    """
    _require_transaction()
    short: list[int] = []
    for product_id in sorted(quantities):
        quantity = quantities[product_id]
        if quantity <= 0:
            raise ValidationFailed("Quantities must be positive.", details={"product_id": product_id})
        with connection.cursor() as cursor:
            cursor.execute(_STOCK_RESERVE, [quantity, product_id, quantity])
            if not cursor.rowcount:
                short.append(product_id)
    if short:
        rows = Stock.objects.filter(product_id__in=short).select_related("product").order_by("product__sku")
        skus = [s.product.sku for s in rows]
        lines = [
            {"sku": s.product.sku, "requested": quantities[s.product_id], "available": max(s.available, 0)}
            for s in rows
        ]
        # The shopper reads the product's name and the real limit; clients read the SKUs.
        names = [f"{s.product.name} (only {max(s.available, 0)} available)" for s in rows]
        raise InsufficientStock(
            "Not enough stock for " + "; ".join(names) + ".", details={"skus": skus, "lines": lines}
        )


def reservations_create(*, lines: Iterable[tuple[int, int, int]], expires_at: datetime) -> list[Reservation]:
    """Record the holds taken by stock_reserve: (order_line_id, product_id, quantity) each."""
    _require_transaction()
    return instances_insert(
        [
            Reservation(order_line_id=line_id, product_id=product_id, quantity=qty, expires_at=expires_at)
            for line_id, product_id, qty in lines
        ]
    )


def reservations_commit(*, order_id: int) -> int:
    """Turn an order's active holds into sales: on hand and reserved both go down. The
    caller holds the order's lock. Returns how many products they held."""
    _require_transaction()
    held = reservations_finish_active(order_id=order_id, status=ReservationStatus.COMMITTED, now=timezone.now())
    with connection.cursor() as cursor:
        for product_id in sorted(held):
            cursor.execute(_STOCK_SELL, [held[product_id], held[product_id], product_id])
    return len(held)


def reservations_release(*, order_id: int) -> int:
    """Give an order's active holds back to the shelf. The caller holds the order's lock.
    Returns how many products they held."""
    _require_transaction()
    held = reservations_finish_active(order_id=order_id, status=ReservationStatus.RELEASED, now=timezone.now())
    with connection.cursor() as cursor:
        for product_id in sorted(held):
            cursor.execute(_STOCK_UNRESERVE, [held[product_id], product_id])
    return len(held)


class StockBelowReserved(Conflict):
    code = "stock_below_reserved"


def stock_set_on_hand(*, product_id: int, on_hand: int) -> Stock:
    """Set the units on hand (a stock count by staff) without touching `reserved`.

    One conditional UPDATE: refused with StockBelowReserved when fewer units than are
    already reserved would remain, so a concurrent checkout can never be oversold.
    """
    if on_hand < 0:
        raise ValidationFailed("Stock on hand cannot be negative.", details={"on_hand": ["Must be 0 or more."]})
    Stock.objects.get_or_create(product_id=product_id)
    updated = Stock.objects.filter(product_id=product_id, reserved__lte=on_hand).update(on_hand=on_hand)
    stock = Stock.objects.get(product_id=product_id)
    if not updated:
        raise StockBelowReserved(
            f"{stock.reserved} units are reserved; on hand cannot go below that.",
            details={"on_hand": [f"Must be at least {stock.reserved} (reserved)."]},
        )
    return stock


def product_image_set(*, product: Product, image: File | None) -> Product:
    """Give a product its picture and the catalog thumbnail generated from it (inventory.images),
    or remove both (`image=None`). The previous files are deleted from storage after commit,
    so a rolled-back change never loses the picture still referenced."""
    old_names = [f.name for f in (product.image, product.thumbnail) if f]
    if image is None:
        product.image = None
        product.thumbnail = None
    else:
        stem = slugify(product.sku) or "product"
        product.image.save(f"{stem}{_suffix(image.name)}", image, save=False)
        thumbnail = image_thumbnail(source=product.image, name=stem)
        product.thumbnail.save(thumbnail.name, thumbnail, save=False)
    product.save(update_fields=["image", "thumbnail", "updated_at"])
    new_names = {f.name for f in (product.image, product.thumbnail) if f}
    stale = [name for name in old_names if name not in new_names]
    storage = product.image.storage
    if stale:
        transaction.on_commit(lambda: [storage.delete(name) for name in stale])
    return product


def _suffix(name: str | None) -> str:
    suffix = PurePosixPath(name or "").suffix.lower()
    return suffix if suffix in {".jpg", ".jpeg", ".png", ".webp", ".gif"} else ".img"
