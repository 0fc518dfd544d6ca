from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import Pagination
from invoicing.selectors import invoice_for_order, invoice_get_for_user, invoices_visible_to
from invoicing.serializers import InvoiceDetailOutput, InvoiceOutput, OrderInvoiceEnvelope


class OrderInvoiceApi(APIView):
    @extend_schema(responses=OrderInvoiceEnvelope, operation_id="orders_invoice_retrieve")
    def get(self, request: Request, order_id: int) -> Response:
        invoice = invoice_for_order(user=request.user, order_id=order_id)
        return Response(OrderInvoiceEnvelope({"invoice": invoice}).data)


class InvoiceListApi(APIView):
    @extend_schema(responses=InvoiceOutput(many=True), operation_id="invoices_list")
    def get(self, request: Request) -> Response:
        paginator = Pagination()
        qs = invoices_visible_to(request.user).order_by("-created_at", "-id")
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(InvoiceOutput(page, many=True).data)


class InvoiceDetailApi(APIView):
    @extend_schema(responses=InvoiceDetailOutput, operation_id="invoices_retrieve")
    def get(self, request: Request, invoice_id: int) -> Response:
        return Response(InvoiceDetailOutput(invoice_get_for_user(user=request.user, invoice_id=invoice_id)).data)
