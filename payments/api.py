import logging

from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from common.idempotency import idempotent
from common.metrics import metrics_webhook
from common.openapi import api_errors, idempotency_key_header
from orders.selectors import order_get_for_user
from payments.providers import payment_provider
from payments.providers.base import WebhookPayloadInvalid, WebhookSignatureInvalid
from payments.providers.simulated import NAME as SIMULATED
from payments.selectors import payment_attempts_for_order
from payments.serializers import PaymentAttemptOutput, PaymentCreateInput
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
        order = order_get_for_user(user=request.user, order_id=order_id)
        data = PaymentCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        assert isinstance(request.user, User)  # IsAuthenticated
        attempt = payment_attempt_create(
            order_id=order.pk, user=request.user, amount_policy=self.amount_policy, **data.validated_data
        )
        return Response(PaymentAttemptOutput(attempt, context={"request": request}).data, status=201)


class WebhookAck(serializers.Serializer):
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
        result = payment_webhook_apply(event=event, provider_name=provider.name, on_succeeded=self.on_succeeded)
        metrics_webhook(outcome="deduplicated" if result.duplicate else "received", event_type=str(event.type))
        return Response(
            {
                "received": True,
                "duplicate": result.duplicate,
                "changed_state": result.changed_state,
                "outcome": result.outcome,
            }
        )
