"""CPU per request of the shopper flow in one process, with no HTTP server and no other load
(`make bench`, after the HTTP load): where an order's web CPU goes, request by request.

Django's test client sends each request through the whole middleware stack and the real
views (production settings: DEBUG off, the Redis cache and sessions, the broker, JSON request
logs at INFO written to /dev/null) on the bench's PostgreSQL database: add to cart, checkout,
pay with `pm_card_success` (the charge after commit included: the simulated provider's
delivery row and its Celery kick), the provider's `payment.succeeded` webhook (signed as the
provider signs it) and one invoice-block poll. The CPU time of this process is taken around
each request (time.process_time), after a warm-up. Under the HTTP load the same work costs
more per order (gunicorn and nginx around it, and two cores shared by every process); this
table is the floor that code changes move, without the machine's noise.
"""

import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

REQUESTS = ("cart", "checkout", "pay", "webhook", "poll")
KEY = "Idempotency-Key"
ADDRESS = {"name": "Bench Shopper", "line1": "1 Road", "city": "Paris", "postal_code": "75001", "country": "FR"}


@dataclass
class RequestCpu:
    orders: int
    cpu_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(REQUESTS, 0.0))

    def ms(self, name: str) -> float:
        return 1000 * self.cpu_s[name] / self.orders

    @property
    def total_ms(self) -> float:
        return sum(self.ms(name) for name in REQUESTS)


def bench_request_cpu(*, orders: int, warmup: int = 10, after_warmup: Callable[[], None] | None = None) -> RequestCpu:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client, override_settings
    from standardwebhooks.webhooks import Webhook

    from inventory.models import Product, Stock

    user, _ = get_user_model().objects.get_or_create(username="request-cpu-shopper")
    skus = []
    for i in range(10):
        product, created = Product.objects.get_or_create(
            sku=f"CPU-{i}", defaults={"name": f"CPU product {i}", "price": Decimal("10.00") + i, "currency": "EUR"}
        )
        if created:
            Stock.objects.create(product=product, on_hand=10_000_000)
        skus.append(product.sku)
    shopper, provider = Client(), Client()  # the provider posts without the shopper's cookies
    shopper.force_login(user)
    signer = Webhook(settings.PAYMENT_WEBHOOK_SECRET)

    def timed(cpu: dict[str, float], name: str, call: Callable[[], Any], expected: int) -> Any:
        started = time.process_time()
        response = call()
        cpu[name] += time.process_time() - started
        assert response.status_code == expected, (name, response.status_code, response.content[:300])
        return response

    def post(client: Client, path: str, body: object, **headers: str) -> Callable[[], Any]:
        raw = body if isinstance(body, str) else json.dumps(body)
        return lambda: client.post(path, data=raw, content_type="application/json", headers=headers)

    def one_order(n: int, cpu: dict[str, float]) -> None:
        timed(cpu, "cart", post(shopper, "/api/v1/cart/items/", {"sku": skus[n % len(skus)], "quantity": 1}), 201)
        checkout = post(shopper, "/api/v1/checkout/", {"shipping_address": ADDRESS}, **{KEY: uuid.uuid4().hex})
        order = timed(cpu, "checkout", checkout, 201).json()
        pay = post(
            shopper, f"/api/v1/orders/{order['id']}/payments/", {"payment_method": "pm_card_success"},
            **{KEY: uuid.uuid4().hex},
        )  # fmt: skip
        attempt = timed(cpu, "pay", pay, 201).json()
        data = {"provider_reference": attempt["provider_reference"], "amount": attempt["amount"],
                "currency": attempt["currency"], "failure_reason": None}  # fmt: skip
        now = datetime.now(UTC)
        body = json.dumps({"id": f"evt_{uuid.uuid4().hex}", "type": "payment.succeeded",
                           "created_at": now.isoformat(), "data": data})  # fmt: skip
        msg_id = f"msg_{uuid.uuid4().hex}"
        signed = {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
                  "webhook-signature": signer.sign(msg_id, now, body)}  # fmt: skip
        timed(cpu, "webhook", post(provider, "/api/v1/webhooks/payments/", body, **signed), 200)
        timed(cpu, "poll", lambda: shopper.get(f"/orders/{order['id']}/invoice-block/"), 200)

    root = logging.getLogger()
    level, streams = root.level, [(h, getattr(h, "stream", None)) for h in root.handlers]
    # As the bench's stack runs (bench/flow.py, Stack): plain HTTP, and the throttles lifted
    # (one client places every order) with their checks still made, Redis round trips included.
    as_the_stack = override_settings(
        SECURE_SSL_REDIRECT=False,
        ALLOWED_HOSTS=["testserver"],
        THROTTLE_RATES=dict.fromkeys(settings.THROTTLE_RATES, "1000000/min"),
    )
    with open(os.devnull, "w") as devnull, as_the_stack:
        root.setLevel(logging.INFO)  # as the web logs: one JSON line per request, rendered and written
        for handler, _ in streams:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(devnull)
        try:
            scratch = dict.fromkeys(REQUESTS, 0.0)
            for n in range(warmup):
                one_order(n, scratch)
            if after_warmup is not None:  # bench/instructions.py switches callgrind on here
                after_warmup()
            result = RequestCpu(orders=orders)
            for n in range(orders):
                one_order(n, result.cpu_s)
        finally:
            root.setLevel(level)
            for handler, stream in streams:
                if isinstance(handler, logging.StreamHandler) and stream is not None:
                    handler.setStream(stream)
    return result


def render_request_cpu(result: RequestCpu) -> str:
    header = "| " + " | ".join(REQUESTS) + " | per order |"
    rule = "|" + " --- |" * (len(REQUESTS) + 1)
    row = "| " + " | ".join(f"{result.ms(name):.1f} ms" for name in REQUESTS) + f" | {result.total_ms:.1f} ms |"
    return f"{header}\n{rule}\n{row}\n\n{NOTES}"


NOTES = """How to read them:

- CPU time of one process per request, averaged over the orders above, after a warm-up: the
  whole middleware stack and the real views on PostgreSQL and Redis, production settings,
  request logs rendered as in production. `pay` includes its after-commit charge (the
  simulated provider's delivery row and Celery kick); `webhook` is the provider's
  `payment.succeeded` (the order paid, stock committed, the invoice created and its
  numbering kicked); `poll` is one invoice-block poll.
- No gunicorn, nginx or other process: under the HTTP load (`bench web` above) an order
  costs more, for the HTTP servers around this work and for two cores shared by everything.
"""
