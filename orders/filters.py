"""Order list filters (django-filter): a malformed value is a 400 naming the parameter."""

import django_filters

from common.filters import UtcIsoDateTimeFilter
from orders.models import Order, OrderStatus


class OrderFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=OrderStatus.choices)
    created_after = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="ISO 8601 date-time, inclusive."
    )
    created_before = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="ISO 8601 date-time, exclusive."
    )
    ordering = django_filters.OrderingFilter(
        fields=(("created_at", "created_at"), ("total", "total")),
        help_text="`created_at`, `-created_at`, `total` or `-total` (default: newest first).",
    )

    class Meta:
        model = Order
        fields: list[str] = []
