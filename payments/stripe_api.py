"""Stripe's webhooks: POST /api/v1/webhooks/stripe/ (routed in flows/urls_api.py).

Verified on the raw body with the SDK's Stripe-Signature check before anything is parsed
or stored; deduplicated on the Stripe event id; applied through the same exactly-once path
as the simulated provider's (payments.services.payment_webhook_apply). Event types the shop
does not act on are recorded and acknowledged (2xx) so Stripe stops resending them.
"""

import logging

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.metrics import metrics_webhook
from payments.api import WebhookAck
from payments.providers.base import WebhookPayloadInvalid, WebhookSignatureInvalid
from payments.providers.stripe import (
    NAME,
    Ignored,
    stripe_event_map,
    stripe_event_record_ignored,
    stripe_event_verify,
)
from payments.refunds import RefundSuccessHandler
from payments.services import SuccessHandler, payment_webhook_apply

logger = logging.getLogger(__name__)


class StripeWebhookApi(APIView):
    authentication_classes: list[type] = []  # the signature is the authentication; no CSRF
    permission_classes = [AllowAny]
    throttle_scope = "webhooks"
    # What a success does to its order: given by the route (flows/urls_api.py).
    on_succeeded: SuccessHandler | None = None
    on_refund_succeeded: RefundSuccessHandler | None = None

    @extend_schema(
        request=None,
        responses={
            200: WebhookAck,
            400: OpenApiResponse(description="Bad, missing or stale Stripe-Signature (webhook_signature_invalid)"),
        },
        operation_id="webhooks_stripe_receive",
        summary="Receive a Stripe webhook",
        description="For Stripe: an event signed with `Stripe-Signature` (verified on the raw body, 300 s "
        "tolerance). Checkout Session and PaymentIntent outcomes are applied once (deduplicated on the event "
        "id); other event types are recorded and acknowledged. A bad, missing or stale signature is 400 "
        "`webhook_signature_invalid` and nothing is stored.",
    )
    def post(self, request: Request) -> Response:
        try:
            event = stripe_event_verify(body=request.body, signature=request.headers.get("Stripe-Signature"))
            mapped = stripe_event_map(event)
        except (WebhookSignatureInvalid, WebhookPayloadInvalid) as exc:
            logger.warning("Stripe webhook refused: %s", exc.message)
            metrics_webhook(
                outcome="rejected", reason="signature" if isinstance(exc, WebhookSignatureInvalid) else "payload"
            )
            raise
        if isinstance(mapped, Ignored):
            ignored = stripe_event_record_ignored(event=event, ignored=mapped)
            metrics_webhook(outcome="deduplicated" if ignored.duplicate else "received", event_type=event["type"])
            body = {
                "received": True,
                "duplicate": ignored.duplicate,
                "changed_state": False,
                "outcome": ignored.outcome,
            }
            return Response(body)
        assert self.on_succeeded is not None, "route StripeWebhookApi with on_succeeded (flows/urls_api.py)"
        result = payment_webhook_apply(
            event=mapped,
            provider_name=NAME,
            on_succeeded=self.on_succeeded,
            on_refund_succeeded=self.on_refund_succeeded,
        )
        metrics_webhook(outcome="deduplicated" if result.duplicate else "received", event_type=event["type"])
        return Response(
            {
                "received": True,
                "duplicate": result.duplicate,
                "changed_state": result.changed_state,
                "outcome": result.outcome,
            }
        )
