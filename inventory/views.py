import mimetypes

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import urlencode

from inventory.models import Product
from inventory.selectors import (
    CATALOG_SORTS,
    CatalogQuery,
    catalog_products,
    categories_for_catalog,
    category_get,
    product_get_for_sale,
)

CATALOG_PAGE_SIZE = 12


def catalog(request: HttpRequest) -> HttpResponse:
    """Search (`q`), category (`category` slug), sort (`sort`) and `page`, all in the query
    string so every view of the catalog is a link. Unknown values fall back to the defaults;
    a page past the end shows the last page."""
    sort = request.GET.get("sort", "name")
    query = CatalogQuery(
        search=request.GET.get("q", "").strip()[:100],
        category=category_get(slug=request.GET.get("category", "")[:100]),
        sort=sort if sort in CATALOG_SORTS else "name",
    )
    page = Paginator(catalog_products(query=query), CATALOG_PAGE_SIZE).get_page(request.GET.get("page"))
    kept = {"q": query.search, "category": query.category.slug if query.category else "", "sort": query.sort}
    context = {
        "products": page.object_list,
        "page": page,
        "query": query,
        "categories": categories_for_catalog(),
        "sorts": [(key, label) for key, (label, _) in CATALOG_SORTS.items()],
        # The filters to keep in the pagination links (the defaults left out).
        "kept_query": urlencode({k: v for k, v in kept.items() if v and (k, v) != ("sort", "name")}),
    }
    return render(request, "inventory/catalog.html", context)


def product_detail(request: HttpRequest, sku: str) -> HttpResponse:
    try:
        product = product_get_for_sale(sku=sku)
    except Product.DoesNotExist as exc:
        raise Http404("No such product") from exc
    context = {"product": product, "cart_max_quantity": settings.CART_MAX_QUANTITY}
    return render(request, "inventory/product.html", context)


PICTURES = "products/"


def product_picture(request: HttpRequest, name: str) -> FileResponse:
    """A product picture or thumbnail from the media storage (public catalog data), served
    by the app in every mode: WhiteNoise serves only collected static files, and a shop
    without a separate media server still shows its pictures. Only names under products/
    (the storage refuses a path that leaves MEDIA_ROOT: 400). Uploads get fresh names, so
    an hour of caching never shows a replaced picture for long."""
    path = PICTURES + name
    if not default_storage.exists(path):
        raise Http404("No such picture")
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if not content_type.startswith("image/"):
        raise Http404("No such picture")
    response = FileResponse(default_storage.open(path, "rb"), content_type=content_type)
    response["Cache-Control"] = "public, max-age=3600"
    return response
