"""Staff actions that matter leave an audit entry (who, when, what, which object)."""

from unittest import mock

from common.models import AuditLogEntry
from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import place_order
from inventory.models import Stock
from invoicing.models import Invoice
from orders.services import order_mark_paid


def _admin_client(client):
    admin = StaffFactory(is_superuser=True)
    client.force_login(admin)
    return admin


def test_invoice_retry_now_is_audited(db, client):
    admin = _admin_client(client)
    order = place_order(user=UserFactory())
    order_mark_paid(order_id=order.pk)
    invoice = Invoice.objects.get(order=order)
    with mock.patch("invoicing.tasks.assign_invoice_number.delay") as delay:
        response = client.post(
            "/admin/invoicing/invoice/", {"action": "retry_now", "_selected_action": [invoice.pk]}, follow=True
        )
    assert response.status_code == 200
    delay.assert_called_once_with(invoice.pk)
    entry = AuditLogEntry.objects.get(action="invoice.retry_now")
    assert entry.actor == admin
    assert (entry.target_type, entry.target_id) == ("invoicing.invoice", str(invoice.pk))


def test_stock_edit_in_the_admin_is_audited_with_old_and_new_values(db, client):
    admin = _admin_client(client)
    product = ProductFactory(on_hand=10)
    page = client.get(f"/admin/inventory/product/{product.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data["on_hand"] = 12
    response = client.post(f"/admin/inventory/product/{product.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    assert Stock.objects.get(product=product).on_hand == 12
    entry = AuditLogEntry.objects.get(action="stock.edit")
    assert entry.actor == admin
    assert entry.target_id == str(product.pk)
    assert entry.details == {"on_hand": [10, 12]}
    # Saving again without a change records nothing new.
    data["on_hand"] = 12
    client.post(f"/admin/inventory/product/{product.pk}/change/", data)
    assert AuditLogEntry.objects.filter(action="stock.edit").count() == 1
