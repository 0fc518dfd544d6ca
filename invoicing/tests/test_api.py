"""Invoices over the API: the order's invoice envelope, the list and the detail, for the
owner and staff; anyone else gets 404 and never the invoice's data."""

import pytest

from common.tests.factories import UserFactory
from common.tests.helpers import place_order
from flows.order_paid import order_place_paid
from invoicing.models import Invoice
from invoicing.services import FaultInjector, InvoiceAttemptFailed, invoice_assign_number

pytestmark = pytest.mark.django_db

# The design's invoice representation (clients rely on these; more are allowed).
INVOICE_FIELDS = {
    "id", "invoice_number", "series", "status", "order_id", "currency", "lines", "subtotal", "discount",
    "shipping", "tax", "total", "amount_paid", "amount_due", "payment_status", "issue_date", "due_date",
    "attempts", "last_error",
}  # fmt: skip
NOT_FOUND = {"error": {"code": "not_found", "message": "Not found.", "details": {}}}


def _paid_invoice(user, django_capture_on_commit_callbacks) -> Invoice:
    order = place_order(user=user)
    with django_capture_on_commit_callbacks(execute=False):
        order_place_paid(order_id=order.pk)
    return Invoice.objects.get(order=order)


def test_order_invoice_is_pending_then_issued(shopper_client, user, django_capture_on_commit_callbacks):
    invoice = _paid_invoice(user, django_capture_on_commit_callbacks)
    url = f"/api/v1/orders/{invoice.order_id}/invoice/"

    pending = shopper_client.get(url)
    invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=0))
    issued = shopper_client.get(url)

    assert pending.status_code == issued.status_code == 200
    core = ("id", "invoice_number", "order_id", "status")
    assert {k: pending.json()["invoice"][k] for k in core} == {
        "id": invoice.pk, "invoice_number": None, "order_id": invoice.order_id, "status": "pending",
    }  # fmt: skip
    assert {k: issued.json()["invoice"][k] for k in core} == {
        "id": invoice.pk, "invoice_number": 1, "order_id": invoice.order_id, "status": "issued",
    }  # fmt: skip
    assert set(issued.json()) == {"invoice"}


def test_order_without_an_invoice_is_404(shopper_client, user):
    order = place_order(user=user)  # not paid: no invoice yet

    response = shopper_client.get(f"/api/v1/orders/{order.pk}/invoice/")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_someone_elses_order_invoice_is_404_and_reveals_nothing(shopper_client, django_capture_on_commit_callbacks):
    theirs = _paid_invoice(UserFactory(), django_capture_on_commit_callbacks)
    invoice_assign_number(invoice_id=theirs.pk, fault=FaultInjector(rate=0))

    by_order = shopper_client.get(f"/api/v1/orders/{theirs.order_id}/invoice/")
    by_id = shopper_client.get(f"/api/v1/invoices/{theirs.pk}/")
    listed = shopper_client.get("/api/v1/invoices/")

    assert (by_order.status_code, by_order.json()) == (404, NOT_FOUND)
    assert (by_id.status_code, by_id.json()) == (404, NOT_FOUND)
    assert listed.json()["count"] == 0


def test_invoice_list_and_detail_for_the_owner(shopper_client, user, django_capture_on_commit_callbacks):
    mine = _paid_invoice(user, django_capture_on_commit_callbacks)
    _paid_invoice(UserFactory(), django_capture_on_commit_callbacks)
    invoice_assign_number(invoice_id=mine.pk, fault=FaultInjector(rate=0))

    listed = shopper_client.get("/api/v1/invoices/")
    detail = shopper_client.get(f"/api/v1/invoices/{mine.pk}/")

    assert listed.status_code == detail.status_code == 200
    assert [i["id"] for i in listed.json()["results"]] == [mine.pk]
    body = detail.json()
    assert set(body) >= INVOICE_FIELDS | {"payment_attempts", "events"}
    mine.refresh_from_db()
    assert (body["invoice_number"], body["series"], body["status"], body["order_id"]) == (
        1, "INV", "issued", mine.order_id,
    )  # fmt: skip
    assert (body["currency"], body["subtotal"], body["total"], body["attempts"], body["last_error"]) == (
        "EUR", str(mine.subtotal), str(mine.total), 1, "",
    )  # fmt: skip
    assert body["issue_date"] == mine.issued_at.date().isoformat()
    assert [(line["quantity"], line["line_total"]) for line in body["lines"]] == [(1, "10.00")]
    assert [e["event_type"] for e in body["events"]][:2] == ["invoice.issued", "invoice.created"]


def test_staff_see_every_invoice(staff_client, django_capture_on_commit_callbacks):
    invoices = [_paid_invoice(UserFactory(), django_capture_on_commit_callbacks) for _ in range(2)]

    listed = staff_client.get("/api/v1/invoices/")
    detail = staff_client.get(f"/api/v1/invoices/{invoices[0].pk}/")
    by_order = staff_client.get(f"/api/v1/orders/{invoices[1].order_id}/invoice/")

    assert sorted(i["id"] for i in listed.json()["results"]) == sorted(i.pk for i in invoices)
    assert detail.status_code == 200
    assert by_order.json()["invoice"]["id"] == invoices[1].pk


@pytest.mark.parametrize("path", ["/api/v1/invoices/", "/api/v1/invoices/1/", "/api/v1/orders/1/invoice/"])
def test_anonymous_is_401(api_client, path):
    response = api_client.get(path)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_pending_invoice_shows_its_failed_attempts(shopper_client, user, django_capture_on_commit_callbacks):
    invoice = _paid_invoice(user, django_capture_on_commit_callbacks)
    for _ in range(2):
        with pytest.raises(InvoiceAttemptFailed):
            invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=1))

    body = shopper_client.get(f"/api/v1/invoices/{invoice.pk}/").json()

    assert (body["status"], body["invoice_number"], body["attempts"]) == ("pending", None, 2)
    assert body["last_error"].startswith("simulated fault")
