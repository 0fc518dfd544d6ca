"""Staff billing API: draft orders, finalize, void, payment links, sending; staff only
(403 customers, 401 anonymous), the design's error shape, all in the OpenAPI schema."""

from decimal import Decimal

import pytest
import yaml
from django.core import mail

from common.tests.factories import ProductFactory, UserFactory
from inventory.models import Stock
from invoicing.models import Invoice, InvoiceStatus
from invoicing.services import FaultInjector, invoice_assign_number
from invoicing.tests.docs_helpers import staff_invoice, succeed
from orders.models import DraftOrder, Order, OrderStatus
from payments.models import PaymentAttempt

pytestmark = pytest.mark.django_db

FREE_TEXT = {"description": "Workshop day", "quantity": 2, "unit_price": "450.00", "tax_rate": "0.2000"}


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


def _create(staff_client, **overrides) -> dict:
    customer = overrides.pop("customer", None) or UserFactory().username
    product = ProductFactory(sku="LAMP-1", price=Decimal("79.00"), on_hand=5)
    payload = {"customer": customer, "lines": [{"sku": product.sku, "quantity": 2}, FREE_TEXT], **overrides}
    response = staff_client.post("/api/v1/draft-orders/", payload, format="json")
    assert response.status_code == 201, response.content
    return response.json()


# --- Draft orders ------------------------------------------------------------------------------


def test_staff_create_a_draft_order_and_review_its_totals(staff_client):
    customer = UserFactory(username="acme")
    body = _create(staff_client, customer="acme", due_days=45, allow_partial=True, notes="PO 9")

    assert body["status"] == "draft"
    assert body["customer"] == "acme"
    assert [(line["sku"], line["description"], line["quantity"], line["line_total"]) for line in body["lines"]] == [
        ("LAMP-1", ProductFactory._meta.model.objects.get(sku="LAMP-1").name, 2, "158.00"),
        ("", "Workshop day", 2, "900.00"),
    ]
    assert (body["subtotal"], body["discount"], body["shipping"], body["tax"], body["total"]) == (
        "1058.00",
        "0.00",
        "0.00",
        "211.60",
        "1269.60",
    )
    assert body["tax_by_rate"] == [{"rate": "0.2000", "net": "1058.00", "tax": "211.60"}]
    assert (body["due_days"], body["allow_partial"], body["notes"]) == (45, True, "PO 9")
    assert (body["order_id"], body["invoice"]) == (None, None)
    assert DraftOrder.objects.get(pk=body["id"]).customer == customer
    assert staff_client.get(f"/api/v1/draft-orders/{body['id']}/").json() == body


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([{"sku": "NOPE", "quantity": 1}], "lines"),
        ([{"description": "x", "quantity": 1}], "lines"),
        ([{"sku": "LAMP-1", "quantity": 0}], "lines"),
        ([{**FREE_TEXT, "tax_rate": "1.5"}], "lines"),
        ([], "lines"),
    ],
)
def test_bad_draft_requests_are_400_and_create_nothing(staff_client, lines, field):
    ProductFactory(sku="LAMP-1")
    response = staff_client.post(
        "/api/v1/draft-orders/", {"customer": UserFactory().username, "lines": lines}, format="json"
    )
    error = _error(response, 400, "validation_error")
    assert field in error["details"]
    assert not DraftOrder.objects.exists()


def test_unknown_customer_is_400(staff_client):
    response = staff_client.post("/api/v1/draft-orders/", {"customer": "ghost", "lines": [FREE_TEXT]}, format="json")
    assert "customer" in _error(response, 400, "validation_error")["details"]


def test_finalize_reserves_stock_places_the_order_and_creates_the_invoice(staff_client):
    draft = _create(staff_client)

    response = staff_client.post(f"/api/v1/draft-orders/{draft['id']}/finalize/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "finalized"
    assert body["total"] == draft["total"]
    order = Order.objects.get(pk=body["order_id"])
    assert (order.status, order.reservation_expires_at, str(order.total)) == (
        OrderStatus.PENDING_PAYMENT,
        None,
        "1269.60",
    )
    assert body["invoice"] == {
        "id": order.invoice.pk,
        "invoice_number": None,
        "series": "INV",
        "display_number": None,
        "status": "pending",
    }
    assert Stock.objects.get(product__sku="LAMP-1").reserved == 2

    invoice_assign_number(invoice_id=order.invoice.pk, fault=FaultInjector(rate=0))
    again = staff_client.get(f"/api/v1/draft-orders/{draft['id']}/").json()
    assert (again["invoice"]["status"], again["invoice"]["invoice_number"]) == ("issued", 1)
    error = _error(staff_client.post(f"/api/v1/draft-orders/{draft['id']}/finalize/"), 409, "illegal_transition")
    assert "finalized" in error["message"]
    assert Order.objects.count() == 1


def test_finalize_with_too_little_stock_is_409_naming_the_skus(staff_client):
    draft = _create(staff_client)
    Stock.objects.filter(product__sku="LAMP-1").update(on_hand=1)

    error = _error(staff_client.post(f"/api/v1/draft-orders/{draft['id']}/finalize/"), 409, "insufficient_stock")

    assert error["details"]["skus"] == ["LAMP-1"]
    # The message names the product as shoppers know it (its name), the details its SKU.
    assert Stock.objects.get(product__sku="LAMP-1").product.name in error["message"]
    assert not Order.objects.exists()
    assert Stock.objects.get(product__sku="LAMP-1").reserved == 0
    assert DraftOrder.objects.get(pk=draft["id"]).status == "draft"


# --- Void, payment links, sending ----------------------------------------------------------------


def test_void_an_issued_unpaid_invoice(staff_client):
    invoice = staff_invoice()

    response = staff_client.post(f"/api/v1/invoices/{invoice.pk}/void/", {"reason": "typo"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["invoice_number"], body["void_reason"], body["amount_due"]) == (
        "void",
        invoice.number,
        "typo",
        "0.00",
    )
    assert body["events"][0]["event_type"] == "invoice.void"
    error = _error(staff_client.post(f"/api/v1/invoices/{invoice.pk}/void/"), 409, "illegal_transition")
    assert error["details"] == {"from": "void", "to": "void"}


def test_void_is_409_when_paid_or_pending(staff_client):
    paid = staff_invoice()
    succeed(paid)
    pending = staff_invoice(issue=False)

    _error(staff_client.post(f"/api/v1/invoices/{paid.pk}/void/"), 409, "invoice_paid")
    _error(staff_client.post(f"/api/v1/invoices/{pending.pk}/void/"), 409, "illegal_transition")

    assert list(Invoice.objects.order_by("pk").values_list("status", flat=True)) == ["issued", "pending"]
    _error(staff_client.post("/api/v1/invoices/999999/void/"), 404, "not_found")


def test_payment_link_api_returns_a_working_absolute_url(staff_client, client):
    invoice = staff_invoice()

    response = staff_client.post(f"/api/v1/invoices/{invoice.pk}/payment-link/")

    assert response.status_code == 201
    body = response.json()
    assert set(body) >= {"url", "expires_at", "amount"}
    assert body["url"].startswith("http://testserver/pay/")
    assert body["amount"] == "120.00"
    page = client.get(body["url"].removeprefix("http://testserver"))
    assert page.status_code == 200
    assert 'data-state="payable"' in page.content.decode()


def test_payment_link_is_409_while_pending_void_or_paid(staff_client):
    pending = staff_invoice(issue=False)
    _error(staff_client.post(f"/api/v1/invoices/{pending.pk}/payment-link/"), 409, "invoice_not_issued")
    paid = staff_invoice()
    succeed(paid)
    _error(staff_client.post(f"/api/v1/invoices/{paid.pk}/payment-link/"), 409, "invoice_paid")
    void = staff_invoice()
    staff_client.post(f"/api/v1/invoices/{void.pk}/void/")
    _error(staff_client.post(f"/api/v1/invoices/{void.pk}/payment-link/"), 409, "invoice_void")


def test_send_emails_the_invoice_with_its_pdf_and_a_payment_link(staff_client):
    invoice = staff_invoice()

    response = staff_client.post(f"/api/v1/invoices/{invoice.pk}/send/")

    assert response.status_code == 200
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [invoice.order.user.email]
    assert message.subject.startswith(f"Invoice {invoice.display_number}")
    name, content, mimetype = message.attachments[0]
    assert (name, mimetype) == (f"invoice-{invoice.display_number}.pdf", "application/pdf")
    assert content.startswith(b"%PDF-")
    assert "/pay/" in message.body
    invoice.refresh_from_db()
    assert invoice.sent_at is not None


# --- Permissions and schema ----------------------------------------------------------------------


STAFF_ENDPOINTS = [
    ("post", "/api/v1/draft-orders/"),
    ("get", "/api/v1/draft-orders/"),
    ("get", "/api/v1/draft-orders/{draft}/"),
    ("post", "/api/v1/draft-orders/{draft}/finalize/"),
    ("post", "/api/v1/invoices/{invoice}/void/"),
    ("post", "/api/v1/invoices/{invoice}/payment-link/"),
    ("post", "/api/v1/invoices/{invoice}/send/"),
]


@pytest.mark.parametrize(("method", "path"), STAFF_ENDPOINTS)
def test_staff_endpoints_are_403_for_customers_and_401_anonymous(method, path, client_for, api_client):
    invoice = staff_invoice()
    draft = DraftOrder.objects.get(order=invoice.order)
    url = path.format(draft=draft.pk, invoice=invoice.pk)
    owner = invoice.order.user  # even the invoice's own customer

    _error(getattr(client_for(owner), method)(url, {}, format="json"), 403, "permission_denied")
    _error(getattr(api_client, method)(url, {}, format="json"), 401, "not_authenticated")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ISSUED
    assert not PaymentAttempt.objects.exists()
    assert mail.outbox == []


def test_the_endpoints_are_in_the_openapi_schema(api_client):
    schema = yaml.safe_load(api_client.get("/api/v1/schema/").content)
    paths = schema["paths"]
    expected = {
        "/api/v1/draft-orders/": {"get", "post"},
        "/api/v1/draft-orders/{draft_id}/": {"get"},
        "/api/v1/draft-orders/{draft_id}/finalize/": {"post"},
        "/api/v1/invoices/{invoice_id}/void/": {"post"},
        "/api/v1/invoices/{invoice_id}/payment-link/": {"post"},
        "/api/v1/invoices/{invoice_id}/pdf/": {"get"},
        "/api/v1/invoices/{invoice_id}/send/": {"post"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
    assert "application/pdf" in paths["/api/v1/invoices/{invoice_id}/pdf/"]["get"]["responses"]["200"]["content"]
    link = schema["components"]["schemas"]["PaymentLinkOutput"]["properties"]
    assert {"url", "expires_at", "amount"} <= set(link)
    draft_input = schema["components"]["schemas"]["DraftOrderInputRequest"]["properties"]
    assert {"customer", "lines", "due_days"} <= set(draft_input)
