from typing import Any

from django.http import HttpRequest

from orders.selectors import cart_item_count_for_request


def cart_summary(request: HttpRequest) -> dict[str, Any]:
    """The item count for the header's cart link (one cheap query, none for bots without a session)."""
    return {"cart_item_count": cart_item_count_for_request(request=request)}
