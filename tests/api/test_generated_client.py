"""A Python client generated from the published /api/v1/schema/ works, unmodified.

openapi-python-client (requirements-dev.txt) generates a client from the live server's schema
into a temporary directory; the test imports it from there and, as an outside consumer would,
signs in, fills a cart, checks out and pays (each with an Idempotency-Key), and reads the
order's invoice and its PDF, asserting on the typed models the client returns.

No Celery worker runs: the simulated provider's delivery task is stubbed (kicks recorded), its
`payment.succeeded` webhook is signed with the standardwebhooks library and posted over HTTP to
the real endpoint, and the invoice numbering task runs in-process where the worker would run it.

The generator is told that application/pdf is a byte stream (`content_type_overrides`: it only
knows JSON, text/* and application/octet-stream, and would otherwise leave the PDF response out
with a warning). With that, any generator warning fails the test: it means an operation or a
response the client cannot use."""

import importlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from django.utils import timezone

from common.tests.factories import ProductFactory, UserFactory
from invoicing.tasks import assign_invoice_number
from payments.models import PaymentAttempt
from payments.tests.helpers import WEBHOOK_PATH, event_body, record_delivery_kicks, signed_headers

pytestmark = [pytest.mark.django_db(transaction=True)]

PACKAGE = "shop_api_client"
GENERATOR_CONFIG = """\
content_type_overrides:
  application/pdf: application/octet-stream
post_hooks: []
"""
ADDRESS = {"name": "Ada Lovelace", "line1": "1 Analytical St", "city": "London", "postal_code": "N1 9GU",
           "country": "GB"}  # fmt: skip


class Generated:
    """The generated package, imported from the temporary directory."""

    def __init__(self, output: str) -> None:
        self.output = output

    def module(self, dotted: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.{dotted}")


@pytest.fixture(scope="module")
def generated(
    live_server: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Generated]:
    root = tmp_path_factory.mktemp("generated_client")
    with django_db_blocker.unblock():
        response = httpx.get(f"{live_server.url}/api/v1/schema/", params={"format": "json"}, timeout=30)
    assert response.status_code == 200, response.text[:500]
    schema = root / "schema.json"
    schema.write_text(json.dumps(response.json()))
    config = root / "generator.yaml"
    config.write_text(GENERATOR_CONFIG)

    command = ["generate", "--path", schema, "--output-path", root / PACKAGE, "--meta", "none", "--config", config]
    run = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", *map(str, command)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield Generated(output)
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.fixture
def no_worker(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The provider's deliveries are recorded, not sent; numbering runs in-process."""
    numbering = assign_invoice_number
    monkeypatch.setattr(numbering, "delay", lambda invoice_id: numbering.apply(args=[invoice_id]))
    return record_delivery_kicks(monkeypatch)


def test_the_generator_builds_every_operation_without_a_warning(generated):
    assert "warning" not in generated.output.lower(), generated.output
    operations = {
        f"{package.name}.{module.stem}"
        for package in Path(generated.module("api").__file__).parent.iterdir()
        if package.is_dir() and not package.name.startswith("__")
        for module in package.glob("*.py")
        if module.stem != "__init__"
    }
    assert {
        "auth.auth_token_create",
        "cart.cart_items_create",
        "checkout.checkout_create",
        "orders.orders_payments_create",
        "orders.orders_invoice_retrieve",
        "invoices.invoices_pdf",
    } <= operations


def test_a_generated_client_signs_in_checks_out_pays_and_reads_the_invoice(generated, live_server, no_worker):
    models, client_module = generated.module("models"), generated.module("client")
    UserFactory(username="ada")
    product = ProductFactory(on_hand=5)

    # Sign in. The token operation is anonymous; the generator types it AuthenticatedClient (it
    # reads `security: [{}]` as "needs auth"), but it only uses the client's httpx session.
    # Clients are closed at the end: a kept-alive connection keeps a live server thread (and its
    # database connection) open past the test.
    with client_module.Client(base_url=live_server.url, raise_on_unexpected_status=True) as anonymous:
        token = generated.module("api.auth.auth_token_create").sync(
            client=anonymous, body=models.TokenInputRequest(username="ada", password="pass-word-123")
        )
    assert isinstance(token, models.TokenOutput)
    assert timedelta(hours=9, minutes=59) < token.expiry - timezone.now() <= timedelta(hours=10)
    with client_module.AuthenticatedClient(
        base_url=live_server.url, token=token.token, prefix="Token", raise_on_unexpected_status=True
    ) as api:
        _shop_and_pay(generated, api, base_url=live_server.url, sku=product.sku, deliveries=no_worker)


def _shop_and_pay(generated: Generated, api: Any, *, base_url: str, sku: str, deliveries: list[dict]) -> None:
    models = generated.module("models")

    # Fill the cart.
    cart = generated.module("api.cart.cart_items_create").sync(
        client=api, body=models.CartItemInputRequest(sku=sku, quantity=2)
    )
    assert isinstance(cart, models.CartOutput)
    assert (cart.item_count, [(line.sku, line.quantity) for line in cart.lines]) == (2, [(sku, 2)])

    # Check out with a key; the same request again is a replay of the same order.
    checkout = generated.module("api.checkout.checkout_create")
    body = models.CheckoutInputRequest(shipping_address=models.AddressInputRequest(**ADDRESS))
    key = f"checkout-{uuid.uuid4()}"
    order = checkout.sync(client=api, body=body, idempotency_key=key)
    assert isinstance(order, models.OrderOutput)
    assert (order.status, order.total) == ("pending_payment", cart.total)
    replay = checkout.sync_detailed(client=api, body=body, idempotency_key=key)
    assert (replay.status_code, replay.headers["Idempotent-Replayed"], replay.parsed.id) == (201, "true", order.id)

    # No invoice before the payment: a 404 in the error shape, typed as ErrorOutput.
    read_invoice = generated.module("api.orders.orders_invoice_retrieve")
    missing = read_invoice.sync(order.id, client=api)
    assert isinstance(missing, models.ErrorOutput)
    assert missing.error.code == "not_found"

    # Pay; the attempt stays processing until the provider's webhook arrives.
    attempt = generated.module("api.orders.orders_payments_create").sync(
        order.id,
        client=api,
        body=models.PaymentCreateInputRequest(payment_method="pm_card_success"),
        idempotency_key=f"pay-{uuid.uuid4()}",
    )
    assert isinstance(attempt, models.PaymentAttemptOutput)
    assert (attempt.order_id, attempt.status, attempt.amount) == (order.id, "processing", order.total)
    assert [kick["attempt_id"] for kick in deliveries] == [attempt.id]

    # The provider's signed success webhook, over HTTP to the real endpoint.
    event = event_body(PaymentAttempt.objects.get(pk=attempt.id), "payment.succeeded")
    raw = json.dumps(event)
    delivered = httpx.post(
        base_url + WEBHOOK_PATH,
        content=raw,
        headers={"Content-Type": "application/json", **signed_headers(raw, msg_id=event["id"])},
        timeout=30,
    )
    assert delivered.status_code == 200, delivered.text

    # The invoice, numbered, and its PDF.
    envelope = read_invoice.sync(order.id, client=api)
    assert isinstance(envelope, models.OrderInvoiceEnvelope)
    invoice = envelope.invoice
    assert (invoice.order_id, invoice.status, invoice.invoice_number) == (order.id, "issued", 1)
    assert invoice.display_number == f"{invoice.series}-1"
    assert invoice.issued_at is not None
    pdf = generated.module("api.invoices.invoices_pdf").sync(invoice.id, client=api)
    assert isinstance(pdf, generated.module("types").File)
    assert pdf.payload.read(5) == b"%PDF-"
