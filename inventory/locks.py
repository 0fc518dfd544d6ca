"""Row locks of the inventory app (models only; the order every flow takes them in is
written once, in flows/__init__.py). Stock rows are not locked here: stock_reserve changes
them with conditional UPDATEs in product-id order."""

from inventory.models import Reservation, ReservationStatus


def reservations_lock_active(*, order_id: int) -> list[Reservation]:
    """The order's active reservations, locked in product-id order (the stock order)."""
    return list(
        Reservation.objects.select_for_update()
        .filter(order_line__order_id=order_id, status=ReservationStatus.ACTIVE)
        .order_by("product_id")
    )
