"""Payments' own API routes. The payment and webhook endpoints are routed in
flows/urls_api.py, which hands them the invoice-aware amount policy and the paid flow."""

from django.urls import path

from payments.api import OrderRefundsApi

urlpatterns = [
    path("orders/<int:order_id>/refunds/", OrderRefundsApi.as_view(), name="api-order-refunds"),
]
