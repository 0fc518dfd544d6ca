"""Staff's accounting export: `GET /api/v1/invoices/export.csv` with the invoice list's
filters, RFC 4180 CSV (CRLF, quoted fields), streamed; also an admin action."""

import csv
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import place_order
from flows.order_paid import order_place_paid
from invoicing.models import Invoice
from invoicing.selectors import EXPORT_COLUMNS
from invoicing.services import FaultInjector, invoice_assign_number

pytestmark = pytest.mark.django_db

URL = "/api/v1/invoices/export.csv"


def _invoice(*, name: str, issue: bool = True) -> Invoice:
    user = UserFactory(first_name=name, last_name="")
    order = place_order(user=user, product=ProductFactory(price=Decimal("10.00"), on_hand=5))
    order.shipping_address = {**order.shipping_address, "name": name}
    order.save(update_fields=["shipping_address"])
    order_place_paid(order_id=order.pk)
    invoice = Invoice.objects.get(order=order)
    if issue:
        invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=0))
    invoice.refresh_from_db()
    return invoice


def _rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    assert body.endswith("\r\n")  # RFC 4180 line breaks
    return list(csv.reader(io.StringIO(body, newline="")))


def test_staff_export_has_a_header_and_one_row_per_invoice_with_quoting(staff_client):
    tricky = _invoice(name='Ada, "the first" Lovelace')
    plain = _invoice(name="Grace Hopper")
    pending = _invoice(name="Not Yet", issue=False)

    response = staff_client.get(URL)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="invoices.csv"'
    header, *rows = _rows(response)
    assert header == EXPORT_COLUMNS
    by_order = {int(row[-1]): dict(zip(header, row, strict=True)) for row in rows}
    assert set(by_order) == {tricky.order_id, plain.order_id, pending.order_id}
    first = by_order[tricky.order_id]
    assert first["customer"] == 'Ada, "the first" Lovelace'  # survived the quoting
    assert first["invoice"] == f"INV-{tricky.number}"
    assert first["status"] == "issued"
    # Marked paid without a payment attempt: the money is not recorded, so it is all still due.
    assert (first["payment_status"], first["amount_paid"]) == ("unpaid", "0.00")
    assert first["total"] == first["amount_due"] == f"{tricky.total:.2f}"
    assert first["net_by_tax_rate"].startswith("20%=")
    assert by_order[pending.order_id]["invoice"] == ""
    assert by_order[pending.order_id]["status"] == "pending"


def test_the_list_filters_apply_and_a_malformed_one_is_a_400_naming_it(staff_client):
    issued = _invoice(name="Issued One")
    _invoice(name="Pending One", issue=False)

    only_issued = _rows(staff_client.get(URL, {"status": "issued"}))
    assert [int(row[-1]) for row in only_issued[1:]] == [issued.order_id]
    searched = _rows(staff_client.get(URL, {"search": f"INV-{issued.number}"}))
    assert len(searched) == 2

    bad = staff_client.get(URL, {"issued_after": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "validation_error"
    assert "issued_after" in bad.json()["error"]["details"]


def test_customers_are_refused_and_anonymous_callers_must_sign_in(shopper_client, api_client):
    assert shopper_client.get(URL).status_code == 403
    assert api_client.get(URL).status_code == 401


def test_the_admin_action_exports_the_selection(client):
    chosen = _invoice(name="Chosen")
    _invoice(name="Left Out")
    client.force_login(StaffFactory(is_superuser=True))

    response = client.post(
        reverse("admin:invoicing_invoice_changelist"),
        {"action": "export_csv", "_selected_action": [chosen.pk]},
    )

    assert response.status_code == 200
    header, *rows = _rows(response)
    assert header == EXPORT_COLUMNS
    assert [int(row[-1]) for row in rows] == [chosen.order_id]
