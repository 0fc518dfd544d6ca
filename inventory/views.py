from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from inventory.models import Product
from inventory.selectors import product_get_for_sale, products_for_sale


def catalog(request: HttpRequest) -> HttpResponse:
    return render(request, "inventory/catalog.html", {"products": products_for_sale()})


def product_detail(request: HttpRequest, sku: str) -> HttpResponse:
    try:
        product = product_get_for_sale(sku=sku)
    except Product.DoesNotExist as exc:
        raise Http404("No such product") from exc
    return render(request, "inventory/product.html", {"product": product})
