from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import Pagination
from inventory.selectors import products_for_sale
from inventory.serializers import ProductOutput


class ProductListApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses=ProductOutput(many=True), operation_id="products_list")
    def get(self, request: Request) -> Response:
        paginator = Pagination()
        page = paginator.paginate_queryset(products_for_sale(), request, view=self)
        return paginator.get_paginated_response(ProductOutput(page, many=True).data)


class ProductDetailApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses=ProductOutput, operation_id="products_retrieve")
    def get(self, request: Request, sku: str) -> Response:
        return Response(ProductOutput(get_object_or_404(products_for_sale(), sku=sku)).data)
