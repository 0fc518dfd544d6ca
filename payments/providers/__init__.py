"""Payment providers behind one interface (base.PaymentProvider).

`payment_provider()` returns the one named by settings.PAYMENT_PROVIDER ("simulated" by
default). The simulated provider is complete: a hosted payment page, an API path, and
outcomes delivered as real Standard Webhooks HTTP requests from a Celery task.

Adding Stripe (not built; this is where it goes)
------------------------------------------------
Write `payments/providers/stripe.py` with `class StripeProvider(PaymentProvider)` and add
it to PROVIDERS below, then set PAYMENT_PROVIDER=stripe. What each method maps to:

- new_reference(): nothing to mint locally; create the PaymentIntent in `prepare()`
  instead and use its id (`pi_...`) as the provider reference.
- validate_method(): accept Stripe PaymentMethod ids (`pm_...`).
- hosted_page_url(): a Stripe Checkout Session URL (success/cancel URLs = the order page).
- charge(): confirm the PaymentIntent with the method (idempotency key = the attempt id),
  after commit, exactly as the simulated provider is called.
- cancel(): cancel the PaymentIntent.
- parse_webhook(): verify the `Stripe-Signature` header with `stripe.Webhook.construct_event`
  (Stripe does not sign per Standard Webhooks) and map `payment_intent.processing`,
  `payment_intent.succeeded` and `payment_intent.payment_failed` to ProviderEvent types
  processing / succeeded / failed; the event id is the dedupe key (webhook_id).
Everything after parse_webhook (dedupe, locking, state changes, refunds flagged) is
provider-independent and lives in payments/services.py.
"""

from django.conf import settings
from django.utils.module_loading import import_string

from payments.providers.base import PaymentProvider

PROVIDERS: dict[str, str] = {
    "simulated": "payments.providers.simulated.SimulatedProvider",
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
