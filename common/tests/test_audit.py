"""Staff actions that matter leave an audit entry (who, when, what, which object)."""

from unittest import mock

from common.models import AuditLogEntry
from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import place_order
from flows.order_paid import order_place_paid
from inventory.models import Stock
from invoicing.models import Invoice


def _admin_client(client):
    admin = StaffFactory(is_superuser=True)
    client.force_login(admin)
    return admin


def test_invoice_retry_now_is_audited(db, client):
    admin = _admin_client(client)
    order = place_order(user=UserFactory())
    order_place_paid(order_id=order.pk)
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


def test_staff_api_actions_are_audited(db, client_for):
    from decimal import Decimal

    from invoicing.services import invoice_assign_number
    from orders.services import DraftLineSpec, draft_order_create

    staff = StaffFactory()
    api = client_for(staff)
    customer = UserFactory(email="customer@example.com")
    product = ProductFactory(price=Decimal("12.50"), on_hand=10)
    draft = draft_order_create(customer=customer, lines=[DraftLineSpec(sku=product.sku, quantity=2)], actor=staff)

    response = api.post(f"/api/v1/draft-orders/{draft.pk}/finalize/", {}, format="json")
    assert response.status_code == 200, response.content
    finalize = AuditLogEntry.objects.get(action="draft_order.finalize")
    assert (finalize.actor, finalize.target_type, finalize.target_id) == (staff, "orders.draftorder", str(draft.pk))

    invoice = Invoice.objects.get(order__user=customer)
    invoice_assign_number(invoice_id=invoice.pk)
    assert api.post(f"/api/v1/invoices/{invoice.pk}/payment-link/", {}, format="json").status_code == 201
    link = AuditLogEntry.objects.get(action="invoice.payment_link")
    assert link.target_id == str(invoice.pk)
    invoice.refresh_from_db()
    assert Decimal(link.details["amount"]) == invoice.total  # nothing paid yet: the whole total is due

    sent = api.post(f"/api/v1/invoices/{invoice.pk}/send/", {}, format="json")
    assert sent.status_code == 200, sent.content
    assert AuditLogEntry.objects.filter(action="invoice.send", target_id=str(invoice.pk)).exists()

    voided = api.post(f"/api/v1/invoices/{invoice.pk}/void/", {"reason": "duplicate billing"}, format="json")
    assert voided.status_code == 200, voided.content
    void = AuditLogEntry.objects.get(action="invoice.void")
    assert void.actor == staff
    assert void.details == {"reason": "duplicate billing"}
    assert void.target_id == str(invoice.pk)


def test_a_refused_staff_action_leaves_no_audit_entry(db, client_for):
    api = client_for(StaffFactory())
    order = place_order(user=UserFactory())
    order_place_paid(order_id=order.pk)
    invoice = Invoice.objects.get(order=order)  # pending: void is an illegal transition
    response = api.post(f"/api/v1/invoices/{invoice.pk}/void/", {"reason": "x"}, format="json")
    assert response.status_code == 409
    assert not AuditLogEntry.objects.exists()


def test_demo_staff_clerk_has_the_staff_role_but_is_no_superuser(db):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("seed_demo")
    call_command("seed_demo")  # idempotent
    clerk = get_user_model().objects.get(username="staff")
    assert clerk.is_staff
    assert not clerk.is_superuser
    assert clerk.has_perm("invoicing.change_invoice")
    assert clerk.has_perm("inventory.change_stock")
    assert clerk.has_perm("orders.view_order")
    assert clerk.has_perm("payments.view_paymentattempt")
    assert not clerk.has_perm("invoicing.delete_invoice")
    assert not clerk.has_perm("auth.change_user")
