"""Row locks of the orders app (models only; the order in which every flow takes them is
written once, in flows/__init__.py)."""

from django.utils import timezone

from common.db import RowLookup, rows_update
from orders.models import Cart, DraftOrder, Order

_cart_for_update = RowLookup(Cart, for_update=True)
_cart_of_user_for_update = RowLookup(Cart, "user", for_update=True)
_order_for_update = RowLookup(Order, for_update=True)


def cart_lock(*, cart_id: int) -> Cart | None:
    return _cart_for_update(cart_id)


def cart_lock_of_user(*, user_id: int) -> Cart | None:
    """The signed-in shopper's cart (one per user), locked: one statement, no read first."""
    return _cart_of_user_for_update(user_id)


def cart_touch(*, cart_id: int) -> bool:
    """Lock the cart's row by marking it changed now (one UPDATE instead of a locking
    SELECT and a later UPDATE); False if it is gone."""
    return bool(rows_update(Cart, where={"pk": cart_id}, values={"updated_at": timezone.now()}))


def cart_lock_by_session(*, session_key: str) -> Cart | None:
    return Cart.objects.select_for_update().filter(session_key=session_key).first()


def draft_lock(*, draft_id: int) -> DraftOrder | None:
    return DraftOrder.objects.select_for_update().filter(pk=draft_id).first()


def order_lock(*, order_id: int) -> Order:
    """Raises Order.DoesNotExist."""
    order = _order_for_update(order_id)
    if order is None:
        raise Order.DoesNotExist(f"No order {order_id}.")
    return order


def order_lock_or_skip(*, order_id: int) -> Order | None:
    """The order if no other transaction holds it (sweepers: skip it, see it next run)."""
    return Order.objects.select_for_update(skip_locked=True).filter(pk=order_id).first()
