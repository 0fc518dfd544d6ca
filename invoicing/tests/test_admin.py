"""Staff watch and audit numbering in the admin: list, filters, retry now (really enqueued
on the broker), the gap audit page, and invoices that cannot be deleted."""

import pytest
from django.urls import reverse

from common.tests.factories import ProductFactory, StaffFactory
from common.tests.helpers import broker_purge, place_order, queued_tasks
from flows.order_paid import order_place_paid
from invoicing.models import Invoice, InvoiceSequence
from invoicing.services import FaultInjector, InvoiceAttemptFailed, invoice_assign_number

pytestmark = pytest.mark.django_db

TASK = "invoicing.assign_invoice_number"
CHANGELIST = reverse("admin:invoicing_invoice_changelist")
GAP_AUDIT = reverse("admin:invoicing_invoice_gap_audit")


@pytest.fixture
def admin_client(client):
    client.force_login(StaffFactory(is_superuser=True))
    return client


@pytest.fixture
def broker():
    broker_purge()
    yield
    broker_purge()


def _paid_invoice(django_capture_on_commit_callbacks, product=None) -> Invoice:
    order = place_order(product=product)
    with django_capture_on_commit_callbacks(execute=False):
        order_place_paid(order_id=order.pk)
    return Invoice.objects.get(order=order)


def _issued(django_capture_on_commit_callbacks) -> Invoice:
    invoice = _paid_invoice(django_capture_on_commit_callbacks)
    return invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=0))


def test_changelist_shows_numbers_attempts_and_errors(admin_client, django_capture_on_commit_callbacks):
    issued = _issued(django_capture_on_commit_callbacks)
    pending = _paid_invoice(django_capture_on_commit_callbacks)
    with pytest.raises(InvoiceAttemptFailed):
        invoice_assign_number(invoice_id=pending.pk, fault=FaultInjector(rate=1))

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    rows = {i.pk: i for i in response.context["cl"].result_list}
    assert set(rows) == {issued.pk, pending.pk}
    html = response.content.decode()
    assert "INV-1" in html
    assert '<td class="field-number_display">Pending</td>' in html
    assert "simulated fault while issuing number 2" in html
    assert GAP_AUDIT in html


@pytest.mark.parametrize(("status", "expected"), [("pending", "pending"), ("issued", "issued")])
def test_changelist_filters_by_status(admin_client, django_capture_on_commit_callbacks, status, expected):
    issued = _issued(django_capture_on_commit_callbacks)
    pending = _paid_invoice(django_capture_on_commit_callbacks)

    response = admin_client.get(CHANGELIST, {"status__exact": status})

    assert [i.pk for i in response.context["cl"].result_list] == [{"pending": pending, "issued": issued}[expected].pk]


def test_changelist_searches_by_number_and_by_order(admin_client, django_capture_on_commit_callbacks):
    first = _issued(django_capture_on_commit_callbacks)
    second = _issued(django_capture_on_commit_callbacks)

    by_number = admin_client.get(CHANGELIST, {"q": "2"})
    by_order = admin_client.get(CHANGELIST, {"q": str(first.order_id)})

    assert second.pk in [i.pk for i in by_number.context["cl"].result_list]
    assert first.pk in [i.pk for i in by_order.context["cl"].result_list]


@pytest.mark.usefixtures("broker")
def test_retry_now_enqueues_pending_invoices_only(admin_client, django_capture_on_commit_callbacks):
    issued = _issued(django_capture_on_commit_callbacks)
    pending = _paid_invoice(django_capture_on_commit_callbacks)
    before = Invoice.objects.get(pk=pending.pk).enqueued_at

    response = admin_client.post(
        CHANGELIST, {"action": "retry_now", "_selected_action": [issued.pk, pending.pk]}, follow=True
    )

    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == [
        "Enqueued 1 pending invoice(s); skipped 1 already numbered."
    ]
    assert queued_tasks(name=TASK) == [(TASK, [pending.pk])]
    assert Invoice.objects.get(pk=pending.pk).enqueued_at > before
    assert Invoice.objects.get(pk=issued.pk).number == 1  # untouched


@pytest.mark.usefixtures("broker")
def test_retry_now_of_only_issued_invoices_enqueues_nothing(admin_client, django_capture_on_commit_callbacks):
    issued = _issued(django_capture_on_commit_callbacks)

    response = admin_client.post(CHANGELIST, {"action": "retry_now", "_selected_action": [issued.pk]}, follow=True)

    assert [str(m) for m in response.context["messages"]] == [
        "Enqueued 0 pending invoice(s); skipped 1 already numbered."
    ]
    assert queued_tasks(name=TASK) == []


def test_gap_audit_says_no_gaps_only_for_a_complete_series(admin_client, django_capture_on_commit_callbacks):
    for _ in range(3):
        _issued(django_capture_on_commit_callbacks)

    html = admin_client.get(GAP_AUDIT).content.decode()

    assert 'data-audit="ok"' in html
    assert "No gaps: 1..3 complete" in html
    assert 'data-audit="broken"' not in html


def test_gap_audit_lists_missing_numbers_when_there_is_a_gap(admin_client, django_capture_on_commit_callbacks):
    *_, third = [_issued(django_capture_on_commit_callbacks) for _ in range(3)]
    Invoice.objects.filter(pk=third.pk).update(number=5)  # break the invariant on purpose
    InvoiceSequence.objects.filter(series="INV").update(next_value=6)

    html = admin_client.get(GAP_AUDIT).content.decode()

    assert "No gaps" not in html
    assert 'data-audit="broken"' in html
    assert "2: 3–4" in html


def test_gap_audit_flags_numbers_the_counter_lost(admin_client, django_capture_on_commit_callbacks):
    for _ in range(2):
        _issued(django_capture_on_commit_callbacks)
    InvoiceSequence.objects.filter(series="INV").update(next_value=4)  # number 3 taken and lost

    html = admin_client.get(GAP_AUDIT).content.decode()

    assert "No gaps" not in html
    assert "1: 3" in html


def test_gap_audit_with_nothing_numbered(admin_client):
    response = admin_client.get(GAP_AUDIT)

    assert response.status_code == 200
    assert "No invoice has been numbered yet." in response.content.decode()
    assert "No gaps" not in response.content.decode()


def test_gap_audit_is_for_staff_only(client, user):
    client.force_login(user)

    response = client.get(GAP_AUDIT)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_invoices_cannot_be_deleted(admin_client, django_capture_on_commit_callbacks):
    invoice = _issued(django_capture_on_commit_callbacks)
    delete_url = reverse("admin:invoicing_invoice_delete", args=[invoice.pk])

    page = admin_client.get(delete_url)
    posted = admin_client.post(delete_url, {"post": "yes"})
    bulk = admin_client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [invoice.pk], "post": "yes"})
    changelist = admin_client.get(CHANGELIST)

    assert (page.status_code, posted.status_code) == (403, 403)
    assert bulk.status_code in (200, 302)
    assert Invoice.objects.filter(pk=invoice.pk).exists()
    actions = [name for name, _ in changelist.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in actions
    assert "retry_now" in actions


def test_invoice_change_page_shows_the_attempt_record_read_only(admin_client, django_capture_on_commit_callbacks):
    invoice = _paid_invoice(django_capture_on_commit_callbacks)
    with pytest.raises(InvoiceAttemptFailed):
        invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=1))

    response = admin_client.get(reverse("admin:invoicing_invoice_change", args=[invoice.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "simulated fault while issuing number 1" in html
    assert 'name="number"' not in html  # read-only: no input to edit the number
    assert 'name="attempts"' not in html


def test_product_admin_lists_stock(admin_client):
    product = ProductFactory(sku="STOCKED", on_hand=10)
    place_order(product=product, quantity=3)

    response = admin_client.get(reverse("admin:inventory_product_changelist"))

    html = response.content.decode()
    assert '<td class="field-on_hand">10</td>' in html
    assert '<td class="field-reserved">3</td>' in html
    assert '<td class="field-available">7</td>' in html
