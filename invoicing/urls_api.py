from django.urls import path

from invoicing.api import InvoiceDetailApi, InvoiceListApi, OrderInvoiceApi

urlpatterns = [
    path("orders/<int:order_id>/invoice/", OrderInvoiceApi.as_view(), name="api-order-invoice"),
    path("invoices/", InvoiceListApi.as_view(), name="api-invoices"),
    path("invoices/<int:invoice_id>/", InvoiceDetailApi.as_view(), name="api-invoice"),
]
