"""The lifecycle and refund API over HTTP: shapes, error codes, idempotency, audit, and that
every refusal leaves nothing behind. (Services: test_refunds.py.)"""

from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from common.models import AuditLogEntry
from common.tests.factories import ProductFactory, StaffFactory
from common.tests.helpers import place_order
from orders.models import Order, OrderStatus
from payments.models import PaymentAttempt, Refund
from payments.tests.helpers import post_webhook
from payments.tests.test_refunds import on_hand, paid_order, refund_event, trace

pytestmark = pytest.mark.django_db


def _refund(client: Any, order: Order, body: dict[str, Any], key: str = "refund-1") -> Any:
    return client.post(f"/api/v1/orders/{order.pk}/refunds/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_staff_refund_lines_over_http_then_the_webhook_settles_it(client, staff_client, staff):
    mug = ProductFactory(on_hand=10, price=Decimal("12.50"))
    order = paid_order(client, lines=((mug, 2),))

    response = _refund(
        staff_client, order, {"lines": [{"sku": mug.sku, "quantity": 1}], "reason": "chipped", "restock": True}
    )

    assert response.status_code == 201, response.content
    body = response.json()
    refund = Refund.objects.get(pk=body["id"])
    assert body == {
        "id": refund.pk,
        "order_id": order.pk,
        "attempt_id": refund.attempt_id,
        "amount": "15.00",
        "currency": "EUR",
        "status": "pending",
        "reason": "chipped",
        "restock": True,
        "provider_reference": refund.provider_reference,
        "failure_reason": "",
        "cancels_order": False,
        "lines": [{"sku": mug.sku, "name": mug.name, "quantity": 1, "amount": "15.00"}],
        "credit_note": None,
        "created_at": body["created_at"],
        "succeeded_at": None,
        "failed_at": None,
    }
    entry = AuditLogEntry.objects.get(action="refund.create")
    assert (entry.actor_id, entry.target_id) == (staff.pk, str(refund.pk))

    post_webhook(client, refund_event(refund, "refund.succeeded"))

    listed = staff_client.get(f"/api/v1/orders/{order.pk}/refunds/").json()
    assert [(r["id"], r["status"]) for r in listed] == [(refund.pk, "succeeded")]
    assert listed[0]["credit_note"]["status"] in ("pending", "issued")
    assert on_hand(mug) == 9
    owner = staff_client.get(f"/api/v1/orders/{order.pk}/").json()
    assert (owner["status"], owner["payment_status"]) == ("partially_refunded", "partially_refunded")


def test_the_owner_reads_the_refunds_and_cannot_create_one(client, client_for):
    order = paid_order(client)
    shopper = client_for(order.user)
    before = trace(order)

    assert shopper.get(f"/api/v1/orders/{order.pk}/refunds/").json() == []
    refused = _refund(shopper, order, {"amount": "1.00", "reason": "mine"})

    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")
    assert trace(order) == before


def test_a_retried_refund_with_the_same_key_refunds_once(client, staff_client):
    order = paid_order(client)
    body = {"amount": "4.00", "reason": "goodwill"}

    first = _refund(staff_client, order, body, key="same")
    again = _refund(staff_client, order, body, key="same")
    other = _refund(staff_client, order, {"amount": "5.00", "reason": "goodwill"}, key="same")
    missing = staff_client.post(f"/api/v1/orders/{order.pk}/refunds/", body, format="json")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert (other.status_code, other.json()["error"]["code"]) == (422, "idempotency_mismatch")
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "idempotency_key_missing")
    assert Refund.objects.filter(order=order).count() == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"amount": "0.00", "reason": "r"}, 400, "validation_error"),
        ({"amount": "-3.00", "reason": "r"}, 400, "validation_error"),
        ({"amount": "abc", "reason": "r"}, 400, "validation_error"),
        ({"amount": "1.00"}, 400, "validation_error"),  # no reason
        ({"lines": [{"sku": "NOPE", "quantity": 1}], "reason": "r"}, 400, "validation_error"),
        ({"lines": [{"sku": "{sku}", "quantity": 4}], "reason": "r"}, 400, "validation_error"),
        ({"lines": [{"sku": "{sku}", "quantity": 0}], "reason": "r"}, 400, "validation_error"),
        ({"amount": "9999.00", "reason": "r"}, 409, "refund_exceeds_refundable"),
        ({"lines": [{"sku": "{sku}", "quantity": 1}], "amount": "1.00", "reason": "r"}, 400, "validation_error"),
    ],
)
def test_bad_refund_requests_are_clear_errors_and_change_nothing(client, staff_client, body, status, code):
    product = ProductFactory(on_hand=10)
    order = paid_order(client, lines=((product, 3),))
    if "lines" in body:
        body = {**body, "lines": [{**line, "sku": line["sku"].format(sku=product.sku)} for line in body["lines"]]}
    before = trace(order)

    response = _refund(staff_client, order, body)

    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert (error["code"], bool(error["message"])) == (code, True)
    assert trace(order) == before
    assert not AuditLogEntry.objects.filter(action="refund.create").exists()


def test_a_refund_of_an_unpaid_order_is_409_and_changes_nothing(staff_client):
    order = place_order()
    before = trace(order)

    response = _refund(staff_client, order, {"amount": "1.00", "reason": "r"})

    assert (response.status_code, response.json()["error"]["code"]) == (409, "order_not_refundable")
    assert trace(order) == before


def test_ship_and_deliver_over_http_audited_and_shown_on_the_order(client, staff_client, staff):
    order = paid_order(client)
    body = {"carrier": "DHL", "tracking_number": "JD014", "tracking_url": "https://dhl.example/t/JD014"}

    shipped = staff_client.post(f"/api/v1/orders/{order.pk}/ship/", body, format="json")
    delivered = staff_client.post(f"/api/v1/orders/{order.pk}/deliver/", format="json")

    assert shipped.status_code == 200, shipped.content
    assert shipped.json()["status"] == "shipped"
    assert shipped.json()["shipment"] == {
        "carrier": "DHL",
        "tracking_number": "JD014",
        "tracking_url": "https://dhl.example/t/JD014",
        "shipped_at": shipped.json()["shipment"]["shipped_at"],
    }
    assert delivered.json()["status"] == "delivered"
    assert delivered.json()["delivered_at"] is not None
    actions = list(AuditLogEntry.objects.order_by("id").values_list("action", "actor_id"))
    assert actions == [("order.ship", staff.pk), ("order.deliver", staff.pk)]


@pytest.mark.parametrize(
    ("state", "body", "status", "code"),
    [
        ("cancelled", {"carrier": "DHL", "tracking_number": "1"}, 409, "illegal_transition"),
        ("pending_payment", {"carrier": "DHL", "tracking_number": "1"}, 409, "illegal_transition"),
        ("paid", {"carrier": "", "tracking_number": "1"}, 400, "validation_error"),
        (
            "paid",
            {"carrier": "DHL", "tracking_number": "1", "tracking_url": "javascript:alert(1)"},
            400,
            "validation_error",
        ),
    ],
)
def test_bad_ship_requests_are_refused_and_change_nothing(client, staff_client, state, body, status, code):
    order = paid_order(client) if state == "paid" else place_order()
    if state == "cancelled":
        staff_client.post(f"/api/v1/orders/{order.pk}/cancel/", format="json")
        assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    before = trace(order)

    response = staff_client.post(f"/api/v1/orders/{order.pk}/ship/", body, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert trace(order) == before


def test_staff_without_the_refund_permission_is_refused(client, client_for):
    order = paid_order(client)
    clerk = StaffFactory(staff_group=False)  # is_staff, no group permissions
    response = _refund(client_for(clerk), order, {"amount": "1.00", "reason": "r"})
    assert response.status_code == 403
    assert not Refund.objects.exists()


# --- Admin -------------------------------------------------------------------------------------


def test_admin_refund_page_refunds_units_once_per_form(client):
    mug = ProductFactory(on_hand=10)
    order = paid_order(client, lines=((mug, 3),))
    clerk = StaffFactory()
    client.force_login(clerk)
    url = reverse("admin:orders_order_refund", args=[order.pk])
    page = client.get(url)
    assert page.status_code == 200
    key = page.context["form"]["idempotency_key"].value()
    line = order.lines.get()
    data = {"idempotency_key": key, "reason": "wrong colour", "restock": "on", f"line_{line.pk}": "2", "amount": ""}

    first = client.post(url, data)
    again = client.post(url, data)  # the browser resubmitted

    assert (first.status_code, again.status_code) == (302, 302)
    refund = Refund.objects.get(order=order)
    assert (refund.amount, refund.restock, refund.requested_by) == (Decimal("24.00"), True, clerk)
    assert [(rl.order_line_id, rl.quantity) for rl in refund.lines.all()] == [(line.pk, 2)]
    assert AuditLogEntry.objects.filter(action="refund.create", actor=clerk).count() == 1
    change = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    assert refund.provider_reference in change  # the refunds inline


def test_admin_refund_page_shows_the_refusal_and_changes_nothing(client):
    order = paid_order(client)
    client.force_login(StaffFactory())
    url = reverse("admin:orders_order_refund", args=[order.pk])
    key = client.get(url).context["form"]["idempotency_key"].value()
    before = trace(order)

    response = client.post(url, {"idempotency_key": key, "reason": "r", "amount": "999.00"})

    assert response.status_code == 200
    assert "Not refunded" in response.content.decode()
    assert trace(order) == before


def test_admin_refund_now_action_on_a_flagged_payment(client):
    order = paid_order(client)
    flagged = PaymentAttempt.objects.get(order=order)
    PaymentAttempt.objects.filter(pk=flagged.pk).update(refund_required=True, refund_reason="test: paid twice")
    clerk = StaffFactory()
    client.force_login(clerk)

    response = client.post(
        reverse("admin:payments_paymentattempt_changelist"),
        {"action": "refund_now", "_selected_action": [flagged.pk]},
        follow=True,
    )

    assert response.status_code == 200
    refund = Refund.objects.get(attempt=flagged)
    assert (refund.amount, refund.reason, refund.requested_by) == (flagged.amount, "test: paid twice", clerk)
    again = client.post(
        reverse("admin:payments_paymentattempt_changelist"),
        {"action": "refund_now", "_selected_action": [flagged.pk]},
        follow=True,
    )
    assert "Not refunded" in again.content.decode()
    assert Refund.objects.filter(attempt=flagged).count() == 1
    assert client.get(reverse("admin:payments_refund_change", args=[refund.pk])).status_code == 200


def test_admin_cancel_action_cancels_unpaid_and_refunds_paid(client):
    paid = paid_order(client)
    unpaid = place_order()
    clerk = StaffFactory()
    client.force_login(clerk)

    client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "cancel_selected", "_selected_action": [paid.pk, unpaid.pk]},
        follow=True,
    )

    assert Order.objects.get(pk=unpaid.pk).status == OrderStatus.CANCELLED
    refund = Refund.objects.get(order=paid)
    assert (refund.cancels_order, refund.amount) == (True, paid.total)
    assert Order.objects.get(pk=paid.pk).status == OrderStatus.PAID  # until the provider confirms


def test_staff_without_the_refund_permission_cannot_cancel_a_paid_order(client, client_for):
    from django.contrib.auth.models import Permission

    order = paid_order(client)
    clerk = StaffFactory(staff_group=False)
    clerk.user_permissions.add(Permission.objects.get(codename="change_order"))
    before = trace(order)

    response = client_for(clerk).post(f"/api/v1/orders/{order.pk}/cancel/", format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (403, "permission_denied")
    assert trace(order) == before


def test_a_delivered_order_refunded_in_part_reads_partially_refunded(client, staff_client):
    order = paid_order(client)
    refund = Refund.objects.get(pk=_refund(staff_client, order, {"amount": "2.00", "reason": "r"}).json()["id"])
    post_webhook(client, refund_event(refund, "refund.succeeded"))
    staff_client.post(f"/api/v1/orders/{order.pk}/ship/", {"carrier": "DHL", "tracking_number": "1"}, format="json")

    delivered = staff_client.post(f"/api/v1/orders/{order.pk}/deliver/", format="json").json()

    assert (delivered["status"], delivered["payment_status"]) == ("delivered", "partially_refunded")
    client.force_login(order.user)
    assert 'data-testid="payment-status">Partially refunded<' in client.get(f"/orders/{order.pk}/").content.decode()


def test_refund_lines_may_not_be_an_empty_list(client, staff_client):
    order = paid_order(client)
    before = trace(order)
    response = _refund(staff_client, order, {"lines": [], "reason": "r"})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "validation_error")
    assert trace(order) == before
