"""Catalog list filters (django-filter): a malformed value is a 400 naming the parameter."""

import django_filters
from django.db.models import Q, QuerySet

from inventory.models import Product


class ProductFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(method="filter_search", help_text="Part of the name, SKU or description.")
    in_stock = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        method="filter_in_stock",
        help_text="`true`: only products with units available; `false`: only sold-out ones.",
    )
    ordering = django_filters.OrderingFilter(
        fields=(("price", "price"), ("name", "name")),
        help_text="`price`, `-price`, `name` or `-name` (default: name).",
    )

    class Meta:
        model = Product
        fields: list[str] = []

    def filter_search(self, queryset: QuerySet[Product], name: str, value: str) -> QuerySet[Product]:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(sku__icontains=value) | Q(description__icontains=value))

    def filter_in_stock(self, queryset: QuerySet[Product], name: str, value: str) -> QuerySet[Product]:
        return queryset.filter(Q(available__gt=0) if value == "true" else Q(available__lte=0))  # annotated
