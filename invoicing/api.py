from typing import Any

from django.contrib.auth.models import User
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import Pagination
from common.audit import audit_record
from common.permissions import HasModelPermission
from invoicing.models import Invoice
from invoicing.selectors import (
    invoice_document_filename,
    invoice_for_order,
    invoice_get_for_user,
    invoices_visible_to,
)
from invoicing.serializers import (
    InvoiceDetailOutput,
    InvoiceOutput,
    InvoiceVoidInput,
    OrderInvoiceEnvelope,
    PaymentLinkOutput,
)
from invoicing.services import invoice_payment_link_create, invoice_pdf_store, invoice_send_email, invoice_void


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


ERROR = OpenApiResponse(description='`{"error": {"code", "message", "details"}}`')


def _staff_invoice_detail(request: Request, invoice_id: int) -> Response:
    return Response(InvoiceDetailOutput(invoice_get_for_user(user=request.user, invoice_id=invoice_id)).data)


class InvoiceVoidApi(APIView):
    permission_classes = [HasModelPermission.of("invoicing.change_invoice")]

    @extend_schema(
        request=InvoiceVoidInput,
        responses={200: InvoiceDetailOutput, 404: ERROR, 409: ERROR},
        operation_id="invoices_void",
        description="Staff: void an issued invoice nothing was paid on. The number stays used; the order is "
        "cancelled and its stock released. 409 `invoice_paid` when money was received, `illegal_transition` "
        "while pending or when already void, `payment_in_progress` while a payment is processing.",
    )
    def post(self, request: Request, invoice_id: int) -> Response:
        data = InvoiceVoidInput(data=request.data)
        data.is_valid(raise_exception=True)
        assert isinstance(request.user, User)
        reason = data.validated_data["reason"]
        invoice = invoice_void(invoice_id=invoice_id, actor=request.user, reason=reason)
        audit_record(actor=request.user, action="invoice.void", target=invoice, details={"reason": reason})
        return _staff_invoice_detail(request, invoice_id)


class InvoicePaymentLinkApi(APIView):
    permission_classes = [HasModelPermission.of("invoicing.change_invoice")]

    @extend_schema(
        request=None,
        responses={201: PaymentLinkOutput, 404: ERROR, 409: ERROR},
        operation_id="invoices_payment_link_create",
        description="Staff: a signed link (no login needed) to pay the invoice, bound to its amount due now "
        "and expiring after PAYMENT_LINK_TTL_DAYS (30). 409 while pending, when void or when nothing is due.",
    )
    def post(self, request: Request, invoice_id: int) -> Response:
        assert isinstance(request.user, User)
        link = invoice_payment_link_create(invoice_id=invoice_id, actor=request.user)
        audit_record(
            actor=request.user,
            action="invoice.payment_link",
            target=Invoice.objects.get(pk=link.invoice_id),
            details={"amount": link.amount, "currency": link.currency, "expires_at": link.expires_at},
        )
        body = {
            "url": request.build_absolute_uri(link.path),
            "expires_at": link.expires_at,
            "amount": link.amount,
            "currency": link.currency,
            "invoice_id": link.invoice_id,
        }
        return Response(PaymentLinkOutput(body).data, status=201)


class InvoiceSendApi(APIView):
    permission_classes = [HasModelPermission.of("invoicing.change_invoice")]

    @extend_schema(
        request=None,
        responses={200: InvoiceDetailOutput, 400: ERROR, 404: ERROR, 409: ERROR},
        operation_id="invoices_send",
        description="Staff: e-mail the invoice to the customer with its PDF attached and, while money is due, "
        "a payment link. 409 while pending or when void; 400 when the customer has no e-mail address.",
    )
    def post(self, request: Request, invoice_id: int) -> Response:
        assert isinstance(request.user, User)
        invoice = invoice_send_email(invoice_id=invoice_id, actor=request.user)
        audit_record(actor=request.user, action="invoice.send", target=invoice, details={})
        return _staff_invoice_detail(request, invoice_id)


class PdfRenderer(BaseRenderer):
    media_type = "application/pdf"
    format = "pdf"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return data if isinstance(data, bytes) else b""


class InvoicePdfApi(APIView):
    renderer_classes = [JSONRenderer, PdfRenderer]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[BaseRenderer, str]:
        # The PDF itself is a plain HttpResponse; anything else (errors) is always JSON.
        return JSONRenderer(), "application/json"

    @extend_schema(
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The A4 invoice."),
            (404, "application/json"): ERROR,
            (409, "application/json"): ERROR,
        },
        operation_id="invoices_pdf",
        description="Owner or staff: the invoice as a PDF (stored when issued, rendered again when its status "
        "or amount paid changed). 409 `invoice_not_issued` while the invoice is pending.",
    )
    def get(self, request: Request, invoice_id: int) -> HttpResponse:
        invoice = invoice_get_for_user(user=request.user, invoice_id=invoice_id)
        document = invoice_pdf_store(invoice_id=invoice.pk)
        response = HttpResponse(bytes(document.pdf), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice_document_filename(invoice=invoice)}"'
        response["Content-Length"] = str(document.size)
        response["Cache-Control"] = "private, no-store"
        return response
