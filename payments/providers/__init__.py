"""Payment providers behind one interface (base.PaymentProvider).

`payment_provider()` returns the one named by settings.PAYMENT_PROVIDER ("simulated" by
default). The simulated provider is complete: a hosted payment page, an API path, and
outcomes delivered as real Standard Webhooks HTTP requests from a Celery task.

Stripe (payments/providers/stripe.py, PAYMENT_PROVIDER=stripe)
--------------------------------------------------------------
- new_reference(): a shop-minted `shop_<hex>`, sent to Stripe as the Checkout Session's
  client_reference_id and as metadata.shop_reference of the session and its PaymentIntent.
- prepare(): opens the attempt's Checkout Session (idempotency key derived from the
  reference); its URL is the attempt's redirect_url (hosted_page_url() has none before).
- validate_method() / charge(): API clients may pass a PaymentMethod id (`pm_...`): a
  PaymentIntent is created and confirmed after commit, with its own idempotency key.
- cancel(): expires the open Checkout Session.
- refund_submit(): a shop Refund at Stripe (payments.refunds): the Refund API on the
  attempt's PaymentIntent, idempotency key and metadata.shop_refund_reference from the
  refund; its outcome comes back as refund.updated / refund.failed / charge.refunded.
- Webhooks: POST /api/v1/webhooks/stripe/ (payments/stripe_api.py), Stripe-Signature
  verified with STRIPE_WEBHOOK_SECRET; each provider keeps its own secret and endpoint.
Everything after the event is mapped (dedupe, locking, state changes, refunds flagged) is
provider-independent and lives in payments/services.py.
"""

from django.conf import settings
from django.utils.module_loading import import_string

from payments.providers.base import PaymentProvider

PROVIDERS: dict[str, str] = {
    "simulated": "payments.providers.simulated.SimulatedProvider",
    "stripe": "payments.providers.stripe.StripeProvider",
}


def payment_provider(name: str | None = None) -> PaymentProvider:
    """The configured provider (or the one named), ready to use."""
    name = name or settings.PAYMENT_PROVIDER
    try:
        path = PROVIDERS[name]
    except KeyError:
        raise LookupError(f"Unknown payment provider {name!r}; known: {', '.join(sorted(PROVIDERS))}") from None
    provider: PaymentProvider = import_string(path)()
    return provider
