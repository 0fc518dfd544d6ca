import logging
from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from common.audit import audit_record
from common.idempotency import idempotent
from common.metrics import metrics_webhook
from common.openapi import api_errors, idempotency_key_header
from common.permissions import HasModelPermission
from common.serializers import Serializer
from orders.selectors import order_get_for_user
from payments.providers import payment_provider
from payments.providers.base import WebhookPayloadInvalid, WebhookSignatureInvalid
from payments.providers.simulated import NAME as SIMULATED
from payments.refunds import RefundLineSpec, RefundSuccessHandler, refund_create
from payments.selectors import payment_attempts_for_order, refunds_for_order
from payments.serializers import PaymentAttemptOutput, PaymentCreateInput, RefundCreateInput, RefundOutput
from payments.services import (
    AmountPolicy,
    SuccessHandler,
    payment_amount_order_total,
    payment_attempt_create,
    payment_webhook_apply,
)

logger = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = idempotency_key_header(
    "Unique per logical payment; a retry with the same key replays the first response "
    "(header `Idempotent-Replayed: true`)."
)


class OrderPaymentsApi(APIView):
    throttle_scope = "payments"  # settings.THROTTLE_RATES (common/throttles.py)
    # What the attempt may be for: given by the route (flows/urls_api.py: invoice-aware).
    amount_policy: AmountPolicy = staticmethod(payment_amount_order_total)

    def get_throttles(self) -> list[BaseThrottle]:
        return super().get_throttles() if self.request.method == "POST" else []  # reads are not limited

    @extend_schema(
        responses=PaymentAttemptOutput(many=True),
        operation_id="orders_payments_list",
        summary="List an order's payment attempts",
        description="Every payment attempt of one order, oldest first (not paginated: a handful per order). "
        "404 `not_found` when the order does not exist or is not yours.",
    )
    def get(self, request: Request, order_id: int) -> Response:
        order = order_get_for_user(user=request.user, order_id=order_id)
        attempts = payment_attempts_for_order(order_id=order.pk)
        return Response(PaymentAttemptOutput(attempts, many=True, context={"request": request}).data)

    @extend_schema(
        request=PaymentCreateInput,
        responses={
            201: PaymentAttemptOutput,
            **api_errors({409: ("illegal_transition", "payment_in_progress", "reservation_expired")}),
        },
        parameters=[IDEMPOTENCY_HEADER],
        operation_id="orders_payments_create",
        summary="Pay an order",
        description="Start paying an order awaiting payment; the attempt is `processing` until the provider's "
        "webhook settles it (poll the order or its invoice). 409 `illegal_transition` if it is not awaiting "
        "payment, 409 `payment_in_progress` while another attempt is processing, 409 `reservation_expired`. "
        "Requires `Idempotency-Key` (replay, 422 `idempotency_mismatch`, 409 `idempotency_in_progress`).",
        examples=[OpenApiExample("Card", value={"payment_method": "pm_card_success"}, request_only=True)],
    )
    @idempotent(scope="payment")
    def post(self, request: Request, order_id: int) -> Response:
        # payment_attempt_create locks the order and answers 404 unless it is the caller's
        data = PaymentCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        assert isinstance(request.user, User)  # IsAuthenticated
        attempt = payment_attempt_create(
            order_id=order_id, user=request.user, amount_policy=self.amount_policy, **data.validated_data
        )
        return Response(PaymentAttemptOutput(attempt, context={"request": request}).data, status=201)


REFUND_IDEMPOTENCY_HEADER = idempotency_key_header(
    "Unique per logical refund; a retry with the same key replays the first response "
    "(header `Idempotent-Replayed: true`) and refunds nothing more."
)


class OrderRefundsApi(APIView):
    throttle_scope = "payments"

    def get_throttles(self) -> list[BaseThrottle]:
        return super().get_throttles() if self.request.method == "POST" else []

    def get_permissions(self) -> list[Any]:
        if self.request.method == "POST":
            return [HasModelPermission.of("payments.add_refund")()]
        return list(super().get_permissions())

    @extend_schema(
        responses=RefundOutput(many=True),
        operation_id="orders_refunds_list",
        summary="List an order's refunds",
        description="Every refund of one order, oldest first, with its credit note once issued. 404 "
        "`not_found` when the order does not exist or is not yours.",
    )
    def get(self, request: Request, order_id: int) -> Response:
        order = order_get_for_user(user=request.user, order_id=order_id)
        return Response(RefundOutput(refunds_for_order(order_id=order.pk), many=True).data)

    @extend_schema(
        request=RefundCreateInput,
        responses={
            201: RefundOutput,
            **api_errors(
                {
                    400: ("validation_error",),
                    409: ("order_not_refundable", "refund_exceeds_refundable", "refund_in_progress"),
                }
            ),
        },
        parameters=[REFUND_IDEMPOTENCY_HEADER],
        operation_id="orders_refunds_create",
        summary="Refund an order",
        description="Staff: give money of a paid order back through the payment provider. `lines` "
        "(`[{sku, quantity}]`) refunds those units (gross, discount spread, tax included); `amount` alone is an "
        "amount-only refund; neither refunds everything still refundable. `restock` puts refunded units back "
        "in stock when the refund succeeds. The refund is `pending` until the provider's webhook: then "
        "`succeeded` (order `partially_refunded` or `refunded`, a credit note issued) or `failed`. 400 "
        "`validation_error` for an unknown SKU, more units than were bought and not yet refunded, or a zero or "
        "negative amount; 409 `order_not_refundable` for an unpaid, cancelled or fully refunded order; 409 "
        "`refund_exceeds_refundable` above what was paid minus every pending or succeeded refund. Nothing "
        "changes when it refuses. Requires `Idempotency-Key`.",
        examples=[
            OpenApiExample(
                "Two units, restocked",
                value={"lines": [{"sku": "MUG-001", "quantity": 2}], "reason": "damaged in transit", "restock": True},
                request_only=True,
            ),
            OpenApiExample("Goodwill", value={"amount": "5.00", "reason": "late delivery"}, request_only=True),
        ],
    )
    @idempotent(scope="refund")
    def post(self, request: Request, order_id: int) -> Response:
        data = RefundCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        assert isinstance(request.user, User)
        refund = refund_create(
            order_id=order_id,
            reason=values["reason"],
            restock=values["restock"],
            amount=values.get("amount"),
            lines=[RefundLineSpec(**line) for line in values.get("lines") or []] or None,
            actor=request.user,
        )
        audit_record(
            actor=request.user,
            action="refund.create",
            target=refund,
            details={"order_id": order_id, "amount": str(refund.amount), "restock": refund.restock},
        )
        return Response(RefundOutput(refunds_for_order(order_id=order_id).get(pk=refund.pk)).data, status=201)


class WebhookAck(Serializer):
    received = serializers.BooleanField()
    duplicate = serializers.BooleanField()
    changed_state = serializers.BooleanField()
    outcome = serializers.CharField()


class PaymentWebhookApi(APIView):
    """The provider's webhooks (Standard Webhooks signed). Verified on the raw body before
    anything is parsed or stored; deduplicated on webhook-id."""

    authentication_classes: list[type] = []  # the signature is the authentication; no CSRF
    permission_classes = [AllowAny]
    throttle_scope = "webhooks"  # settings.THROTTLE_RATES; a 429 makes the provider retry later
    # What a success does to its order: given by the route (flows/urls_api.py).
    on_succeeded: SuccessHandler | None = None
    on_refund_succeeded: RefundSuccessHandler | None = None

    @extend_schema(
        request=None,
        responses={
            200: WebhookAck,
            **api_errors({400: ("webhook_signature_invalid", "webhook_payload_invalid")}),
        },
        operation_id="webhooks_payments_receive",
        summary="Receive a provider webhook",
        description="For the payment provider: a Standard Webhooks signed event (`webhook-id`, "
        "`webhook-timestamp`, `webhook-signature`). A bad, missing or stale signature is 400 and nothing is "
        "stored; a duplicate `webhook-id` answers 200 and changes nothing.",
    )
    def post(self, request: Request) -> Response:
        # This endpoint speaks Standard Webhooks, the simulated provider's scheme, whatever
        # PAYMENT_PROVIDER is; Stripe has its own (payments/stripe_api.py).
        provider = payment_provider(SIMULATED)
        try:
            event = provider.parse_webhook(body=request.body, headers=request.headers)
        except (WebhookSignatureInvalid, WebhookPayloadInvalid) as exc:
            logger.warning("payment webhook %s refused: %s", request.headers.get("webhook-id", "?"), exc.message)
            metrics_webhook(
                outcome="rejected", reason="signature" if isinstance(exc, WebhookSignatureInvalid) else "payload"
            )
            raise
        assert self.on_succeeded is not None, "route PaymentWebhookApi with on_succeeded (flows/urls_api.py)"
        result = payment_webhook_apply(
            event=event,
            provider_name=provider.name,
            on_succeeded=self.on_succeeded,
            on_refund_succeeded=self.on_refund_succeeded,
        )
        metrics_webhook(outcome="deduplicated" if result.duplicate else "received", event_type=str(event.type))
        return Response(
            {
                "received": True,
                "duplicate": result.duplicate,
                "changed_state": result.changed_state,
                "outcome": result.outcome,
            }
        )
