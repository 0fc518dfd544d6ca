from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import Pagination
from common.audit import audit_record
from common.openapi import api_errors, error_response
from common.permissions import HasModelPermission
from invoicing.exports import invoices_csv_response
from invoicing.filters import CreditNoteFilter, InvoiceFilter
from invoicing.models import CreditNote, Invoice
from invoicing.selectors import (
    credit_note_document_filename,
    credit_note_get_for_user,
    credit_notes_visible_to,
    invoice_document_filename,
    invoice_for_order,
    invoice_get_for_user,
    invoices_visible_to,
)
from invoicing.serializers import (
    CreditNoteOutput,
    InvoiceDetailOutput,
    InvoiceOutput,
    InvoiceVoidInput,
    OrderInvoiceEnvelope,
    PaymentLinkOutput,
)
from invoicing.services import (
    credit_note_pdf_store,
    invoice_payment_link_create,
    invoice_pdf_store,
    invoice_send_email,
    invoice_void,
)


class OrderInvoiceApi(APIView):
    @extend_schema(
        responses=OrderInvoiceEnvelope,
        operation_id="orders_invoice_retrieve",
        summary="Read an order's invoice",
        description='`{"invoice": {...}}`: `invoice_number` is null and `status` `pending` until the numbering '
        "worker issues it; poll until `issued`. 404 `not_found` when the order has no invoice yet (not paid) "
        "or is not yours.",
    )
    def get(self, request: Request, order_id: int) -> Response:
        invoice = invoice_for_order(user=request.user, order_id=order_id)
        return Response(OrderInvoiceEnvelope({"invoice": invoice}).data)


class InvoiceListApi(ListAPIView):
    serializer_class = InvoiceOutput
    pagination_class = Pagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = InvoiceFilter

    def get_queryset(self) -> QuerySet[Invoice]:
        return invoices_visible_to(self.request.user).order_by("-created_at", "-id")

    @extend_schema(
        operation_id="invoices_list",
        summary="List invoices",
        description="Invoices of your orders (staff: every invoice), newest first, paginated. Filter with "
        "`status`, `payment_status`, `series`, `issued_after`, `issued_before` (ISO 8601) and `search` "
        "(number such as `INV-12`, customer name, username or e-mail); sort with `ordering`. A malformed "
        "value is 400 `validation_error` naming the parameter in `details`.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class InvoiceExportApi(GenericAPIView):
    """Staff's accounting export: the invoice list's filters, as CSV."""

    permission_classes = [HasModelPermission.of("invoicing.view_invoice")]
    filter_backends = [DjangoFilterBackend]
    filterset_class = InvoiceFilter
    pagination_class = None

    def get_queryset(self) -> QuerySet[Invoice]:
        return invoices_visible_to(self.request.user).order_by("series", "number", "created_at", "id")

    @extend_schema(
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="RFC 4180 CSV, UTF-8."),
            **{
                (status, "application/json"): response
                for status, response in api_errors({400: ("validation_error",)}).items()
            },
        },
        filters=True,
        operation_id="invoices_export_csv",
        summary="Export invoices as CSV (staff)",
        description="Staff with the view permission: every invoice matching the list's filters (`status`, "
        "`payment_status`, `series`, `issued_after`, `issued_before`, `search`), one row each: number, dates, "
        "customer, e-mail, VAT id, net by tax rate, subtotal, discount, shipping, tax, total, paid, due, "
        "refunded and the credit note numbers, status. Streamed; sorted by series and number. A malformed "
        "filter is 400 naming it.",
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        return invoices_csv_response(invoices=self.filter_queryset(self.get_queryset()))


class InvoiceDetailApi(APIView):
    @extend_schema(
        responses=InvoiceDetailOutput,
        operation_id="invoices_retrieve",
        summary="Read an invoice",
        description="One invoice with lines, totals, amounts paid and due, payment attempts and recent events. "
        "404 `not_found` when it does not exist or is not yours.",
    )
    def get(self, request: Request, invoice_id: int) -> Response:
        return Response(InvoiceDetailOutput(invoice_get_for_user(user=request.user, invoice_id=invoice_id)).data)


def _staff_invoice_detail(request: Request, invoice_id: int) -> Response:
    return Response(InvoiceDetailOutput(invoice_get_for_user(user=request.user, invoice_id=invoice_id)).data)


class InvoiceVoidApi(APIView):
    permission_classes = [HasModelPermission.of("invoicing.change_invoice")]

    @extend_schema(
        request=InvoiceVoidInput,
        responses={
            200: InvoiceDetailOutput,
            **api_errors({409: ("invoice_paid", "illegal_transition", "payment_in_progress")}),
        },
        operation_id="invoices_void",
        summary="Void an invoice",
        examples=[OpenApiExample("Void", value={"reason": "Issued by mistake"}, request_only=True)],
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
        responses={
            201: PaymentLinkOutput,
            **api_errors({409: ("invoice_not_issued", "invoice_void", "invoice_paid", "conflict")}),
        },
        operation_id="invoices_payment_link_create",
        summary="Create a payment link",
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
        responses={
            200: InvoiceDetailOutput,
            **api_errors({400: ("validation_error",), 409: ("invoice_not_issued", "invoice_void", "conflict")}),
        },
        operation_id="invoices_send",
        summary="E-mail an invoice",
        description="Staff: e-mail the invoice to the customer with its PDF attached and, while money is due, "
        "a payment link. 409 while pending or when void; 400 when the customer has no e-mail address.",
    )
    def post(self, request: Request, invoice_id: int) -> Response:
        assert isinstance(request.user, User)
        invoice = invoice_send_email(invoice_id=invoice_id, actor=request.user)
        audit_record(actor=request.user, action="invoice.send", target=invoice, details={})
        return _staff_invoice_detail(request, invoice_id)


_PDF_ERRORS = {
    401: error_response(401, ("not_authenticated",)),
    404: error_response(404, ("not_found",)),
    409: error_response(409, ("invoice_not_issued",)),
}


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
            **{(status, "application/json"): response for status, response in _PDF_ERRORS.items()},
        },
        operation_id="invoices_pdf",
        summary="Download an invoice PDF",
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


# --- Credit notes ------------------------------------------------------------------------------


class CreditNoteListApi(ListAPIView):
    serializer_class = CreditNoteOutput
    pagination_class = Pagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = CreditNoteFilter

    def get_queryset(self) -> QuerySet[CreditNote]:
        return credit_notes_visible_to(self.request.user).order_by("-created_at", "-id")

    @extend_schema(
        operation_id="credit_notes_list",
        summary="List credit notes",
        description="Credit notes of your orders (staff: every credit note), newest first, paginated. One per "
        "succeeded refund, numbered in its own gapless series `CN` (`display_number` `CN-3`; null and `status` "
        "`pending` until the numbering worker issues it). Filter with `status`, `series`, `invoice`, `order`, "
        "`issued_after`, `issued_before` (ISO 8601) and `search` (number such as `CN-3`, customer name, "
        "username or e-mail); sort with `ordering`. A malformed value is 400 `validation_error` naming the "
        "parameter in `details`.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class CreditNoteDetailApi(APIView):
    @extend_schema(
        responses=CreditNoteOutput,
        operation_id="credit_notes_retrieve",
        summary="Read a credit note",
        description="One credit note: the invoice it corrects, the credited lines, tax by rate, totals, seller "
        "and buyer as on the invoice, the refund's reason. 404 `not_found` when it does not exist or is not "
        "yours.",
    )
    def get(self, request: Request, credit_note_id: int) -> Response:
        note = credit_note_get_for_user(user=request.user, credit_note_id=credit_note_id)
        return Response(CreditNoteOutput(note).data)


_CREDIT_NOTE_PDF_ERRORS = {
    401: error_response(401, ("not_authenticated",)),
    404: error_response(404, ("not_found",)),
    409: error_response(409, ("credit_note_not_issued",)),
}


class CreditNotePdfApi(InvoicePdfApi):
    @extend_schema(
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The A4 credit note."),
            **{(status, "application/json"): response for status, response in _CREDIT_NOTE_PDF_ERRORS.items()},
        },
        operation_id="credit_notes_pdf",
        summary="Download a credit note PDF",
        description="Owner or staff: the credit note as a PDF (rendered and stored once it is numbered, or on "
        "this request if not yet stored). 409 `credit_note_not_issued` while it is pending.",
    )
    def get(self, request: Request, credit_note_id: int) -> HttpResponse:
        note = credit_note_get_for_user(user=request.user, credit_note_id=credit_note_id)
        document = credit_note_pdf_store(credit_note_id=note.pk)
        response = HttpResponse(bytes(document.pdf), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{credit_note_document_filename(credit_note=note)}"'
        response["Content-Length"] = str(document.size)
        response["Cache-Control"] = "private, no-store"
        return response
