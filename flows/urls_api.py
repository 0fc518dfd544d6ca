"""API routes whose views take a higher app's callable (see flows/__init__.py)."""

from django.urls import path

from flows.draft_finalize import draft_order_finalize
from flows.order_cancel import order_cancel_by
from flows.order_paid import payment_amount, payment_succeeded
from flows.refund_succeeded import refund_succeeded
from orders.api import DraftOrderFinalizeApi, OrderCancelApi
from payments.api import OrderPaymentsApi, PaymentWebhookApi
from payments.stripe_api import StripeWebhookApi

urlpatterns = [
    path(
        "orders/<int:order_id>/payments/",
        OrderPaymentsApi.as_view(amount_policy=payment_amount),
        name="api-order-payments",
    ),
    path("orders/<int:order_id>/cancel/", OrderCancelApi.as_view(cancel=order_cancel_by), name="api-order-cancel"),
    path(
        "webhooks/payments/",
        PaymentWebhookApi.as_view(on_succeeded=payment_succeeded, on_refund_succeeded=refund_succeeded),
        name="api-webhooks-payments",
    ),
    path(
        "webhooks/stripe/",
        StripeWebhookApi.as_view(on_succeeded=payment_succeeded, on_refund_succeeded=refund_succeeded),
        name="api-webhooks-stripe",
    ),
    path(
        "draft-orders/<int:draft_id>/finalize/",
        DraftOrderFinalizeApi.as_view(finalize=draft_order_finalize),
        name="api-draft-order-finalize",
    ),
]
