from dataclasses import dataclass

from django.conf import settings
from django.db.models import DecimalField, ExpressionWrapper, F, Q, QuerySet, Value

from inventory.models import Category, Product

# The catalog's sort choices: key -> (label, order_by). "price" sorts by the price shown
# (with VAT when PRICES_INCLUDE_TAX), so the list reads in order whatever the rates.
CATALOG_SORTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "name": ("Name (A–Z)", ("name", "id")),
    "price": ("Price (low to high)", ("shown_price", "name", "id")),
    "-price": ("Price (high to low)", ("-shown_price", "name", "id")),
    "newest": ("Newest first", ("-created_at", "-id")),
}


def products_for_sale() -> QuerySet[Product]:
    """Active products with `available` (on hand - reserved) annotated, one query."""
    return (
        Product.objects.filter(is_active=True)
        .select_related("stock", "category")
        .annotate(available=F("stock__on_hand") - F("stock__reserved"))
        .order_by("name")
    )


def product_get_for_sale(*, sku: str) -> Product:
    return products_for_sale().get(sku=sku)


@dataclass(frozen=True)
class CatalogQuery:
    """The catalog page's filters, already cleaned (unknown values fall back to defaults)."""

    search: str = ""
    category: Category | None = None
    sort: str = "name"


def catalog_products(*, query: CatalogQuery) -> QuerySet[Product]:
    """Products for sale matching the search (name, description or SKU) and category, in the
    chosen order."""
    products = products_for_sale()
    if query.search:
        words = query.search.split()[:8]
        for word in words:
            products = products.filter(Q(name__icontains=word) | Q(description__icontains=word) | Q(sku__iexact=word))
    if query.category is not None:
        products = products.filter(category=query.category)
    shown = F("price") * (Value(1) + F("tax_rate")) if settings.PRICES_INCLUDE_TAX else F("price")
    products = products.annotate(
        shown_price=ExpressionWrapper(shown, output_field=DecimalField(max_digits=16, decimal_places=6))
    )
    return products.order_by(*CATALOG_SORTS.get(query.sort, CATALOG_SORTS["name"])[1])


def categories_for_catalog() -> QuerySet[Category]:
    """Categories with at least one product for sale."""
    return Category.objects.filter(products__is_active=True).distinct().order_by("position", "name")


def category_get(*, slug: str) -> Category | None:
    return Category.objects.filter(slug=slug).first() if slug else None
