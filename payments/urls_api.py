from django.urls import path

from payments.api import OrderPaymentsApi, PaymentWebhookApi

urlpatterns = [
    path("orders/<int:order_id>/payments/", OrderPaymentsApi.as_view(), name="api-order-payments"),
    path("webhooks/payments/", PaymentWebhookApi.as_view(), name="api-webhooks-payments"),
]
