"""Row locks of the inventory app (the order every flow takes them in is written once, in
flows/__init__.py). Stock rows are not locked here: stock_reserve changes them with
conditional UPDATEs in product-id order."""

from datetime import datetime

from django.db import connection

from inventory.models import ReservationStatus

# The order's active holds moved to a final status, locked by the UPDATE itself. They are
# only ever changed under their order's row lock (payment, cancel, expiry), which every
# caller holds, so the order the UPDATE takes them in cannot deadlock with anyone.
_RESERVATIONS_FINISH = (
    'UPDATE "inventory_reservation" AS r SET "status" = %s, "updated_at" = %s FROM "orders_orderline" AS l '
    'WHERE l."id" = r."order_line_id" AND l."order_id" = %s AND r."status" = %s '
    'RETURNING r."product_id", r."quantity"'
)


def reservations_finish_active(*, order_id: int, status: str, now: datetime) -> dict[int, int]:
    """Give the order's active reservations `status` (committed, released): one statement,
    under the order's lock. Returns the units they held per product id."""
    if status == ReservationStatus.ACTIVE:
        raise ValueError("a reservation finishes committed or released")
    held: dict[int, int] = {}
    with connection.cursor() as cursor:
        cursor.execute(_RESERVATIONS_FINISH, [status, now, order_id, ReservationStatus.ACTIVE])
        for product_id, quantity in cursor.fetchall():
            held[product_id] = held.get(product_id, 0) + quantity
    return held
