from django.db.models import F, QuerySet

from inventory.models import Product


def products_for_sale() -> QuerySet[Product]:
    """Active products with `available` (on hand - reserved) annotated, one query."""
    return (
        Product.objects.filter(is_active=True)
        .select_related("stock")
        .annotate(available=F("stock__on_hand") - F("stock__reserved"))
        .order_by("name")
    )


def product_get_for_sale(*, sku: str) -> Product:
    return products_for_sale().get(sku=sku)
