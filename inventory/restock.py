"""Units coming back to stock (a refund with restock). Its own module: inventory/services.py
is the catalog's; this is the one write the refund flow needs from inventory."""

from django.db import connection
from django.db.models import F

from inventory.models import Stock


def stock_restock(*, quantities: dict[int, int]) -> None:
    """Add `quantities` (product id -> units) to on hand, in product-id order (the lock
    order's stock row: take it last). Inside the caller's transaction; a product without
    a Stock row gets one."""
    if not connection.in_atomic_block:
        raise RuntimeError("stock changes must run inside transaction.atomic()")
    for product_id in sorted(quantities):
        quantity = quantities[product_id]
        if quantity <= 0:
            raise ValueError(f"restock quantities must be positive, got {quantity} for product {product_id}")
        if not Stock.objects.filter(product_id=product_id).update(on_hand=F("on_hand") + quantity):
            Stock.objects.create(product_id=product_id, on_hand=quantity)
