"""`is_staff` alone is not a role: staff API actions and staff-wide reads need the staff
group's permissions (or a superuser)."""

import pytest

from common.tests.factories import StaffFactory, UserFactory
from common.tests.helpers import place_order
from orders.models import DraftOrder

pytestmark = pytest.mark.django_db


def test_staff_flag_without_permissions_gets_403_and_sees_only_own_data(client_for, product):
    bare = StaffFactory(staff_group=False)
    api = client_for(bare)
    other_order = place_order(user=UserFactory())

    created = api.post(
        "/api/v1/draft-orders/",
        {"customer": "whoever", "lines": [{"sku": product.sku, "quantity": 1}]},
        format="json",
    )
    listed = api.get("/api/v1/orders/")
    detail = api.get(f"/api/v1/orders/{other_order.pk}/")
    voided = api.post("/api/v1/invoices/1/void/")

    assert created.status_code == 403
    assert created.json()["error"]["code"] == "permission_denied"
    assert voided.status_code == 403
    assert listed.json()["count"] == 0
    assert detail.status_code == 404
    assert not DraftOrder.objects.exists()


def test_staff_group_member_may_bill_and_sees_every_order(client_for, product):
    customer = UserFactory()
    api = client_for(StaffFactory())
    order = place_order(user=customer)

    created = api.post(
        "/api/v1/draft-orders/",
        {"customer": customer.username, "lines": [{"sku": product.sku, "quantity": 1}]},
        format="json",
    )

    assert created.status_code == 201
    assert api.get(f"/api/v1/orders/{order.pk}/").status_code == 200
