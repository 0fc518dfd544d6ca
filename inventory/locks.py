"""Row locks of the inventory app (the order every flow takes them in is written once, in
flows/__init__.py). Stock rows are not locked here: stock_reserve changes them with
conditional UPDATEs in product-id order."""

from datetime import datetime

from django.db import connection

from inventory.models import ReservationStatus

# The order's active holds moved to a final status, locked by the UPDATE itself. They are
# only ever changed under their order's row lock (payment, cancel, expiry), which every
# caller holds, so the order the UPDATE takes them in cannot deadlock with anyone.
# Plain enough for SQLite too (`make run`): no UPDATE ... FROM, whose RETURNING SQLite
# cannot qualify.
_RESERVATIONS_FINISH = (
    'UPDATE "inventory_reservation" SET "status" = %s, "updated_at" = %s '
    'WHERE "order_line_id" IN (SELECT "id" FROM "orders_orderline" WHERE "order_id" = %s) AND "status" = %s '
    'RETURNING "product_id", "quantity"'
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
