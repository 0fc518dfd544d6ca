from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import Pagination
from inventory.filters import ProductFilter
from inventory.models import Product
from inventory.selectors import products_for_sale
from inventory.serializers import ProductOutput


class ProductListApi(ListAPIView):
    permission_classes = [AllowAny]
    serializer_class = ProductOutput
    pagination_class = Pagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = ProductFilter

    def get_queryset(self) -> QuerySet[Product]:
        return products_for_sale()

    @extend_schema(
        operation_id="products_list",
        summary="List the catalog",
        description="Active products with price, currency and units available now, by name; paginated. "
        "Filter with `search`, `in_stock`, sort with `ordering`.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class ProductDetailApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        responses=ProductOutput,
        operation_id="products_retrieve",
        summary="Read a product",
        description="One active product by SKU; 404 `not_found` for an unknown or inactive SKU.",
    )
    def get(self, request: Request, sku: str) -> Response:
        return Response(ProductOutput(get_object_or_404(products_for_sale(), sku=sku)).data)
