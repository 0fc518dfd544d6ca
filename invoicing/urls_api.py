from django.urls import path

from invoicing.api import (
    CreditNoteDetailApi,
    CreditNoteListApi,
    CreditNotePdfApi,
    InvoiceDetailApi,
    InvoiceExportApi,
    InvoiceListApi,
    InvoicePaymentLinkApi,
    InvoicePdfApi,
    InvoiceSendApi,
    InvoiceVoidApi,
    OrderInvoiceApi,
)

urlpatterns = [
    path("orders/<int:order_id>/invoice/", OrderInvoiceApi.as_view(), name="api-order-invoice"),
    path("invoices/", InvoiceListApi.as_view(), name="api-invoices"),
    path("invoices/export.csv", InvoiceExportApi.as_view(), name="api-invoices-export"),
    path("invoices/<int:invoice_id>/", InvoiceDetailApi.as_view(), name="api-invoice"),
    path("invoices/<int:invoice_id>/pdf/", InvoicePdfApi.as_view(), name="api-invoice-pdf"),
    path("invoices/<int:invoice_id>/void/", InvoiceVoidApi.as_view(), name="api-invoice-void"),
    path("invoices/<int:invoice_id>/payment-link/", InvoicePaymentLinkApi.as_view(), name="api-invoice-payment-link"),
    path("invoices/<int:invoice_id>/send/", InvoiceSendApi.as_view(), name="api-invoice-send"),
    path("credit-notes/", CreditNoteListApi.as_view(), name="api-credit-notes"),
    path("credit-notes/<int:credit_note_id>/", CreditNoteDetailApi.as_view(), name="api-credit-note"),
    path("credit-notes/<int:credit_note_id>/pdf/", CreditNotePdfApi.as_view(), name="api-credit-note-pdf"),
]
