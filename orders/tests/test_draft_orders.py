"""Staff billing: draft orders, finalize (stock held without expiry, order placed, invoice
created and numbered by the same service as every invoice)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from common.errors import IllegalTransition, ValidationFailed
from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from flows.draft_finalize import draft_order_finalize
from inventory.models import Reservation, ReservationStatus, Stock
from inventory.services import InsufficientStock
from invoicing.models import BillingProfile, Invoice, InvoiceStatus
from invoicing.services import FaultInjector, invoice_assign_number
from invoicing.tests.helpers import record_numbering_enqueues
from orders.models import DraftOrder, DraftOrderLine, DraftOrderStatus, Order, OrderStatus
from orders.selectors import draft_order_totals
from orders.services import (
    RESERVATION_NO_EXPIRY,
    DraftLineSpec,
    draft_order_create,
    draft_order_create_from_order,
    draft_order_set_lines,
    orders_expire_unpaid,
)
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db


def _draft(*, customer=None, lines=None, **kwargs) -> DraftOrder:
    customer = customer or UserFactory()
    if lines is None:
        product = ProductFactory(price=Decimal("12.50"), on_hand=10)
        lines = [DraftLineSpec(sku=product.sku, quantity=4)]
    return draft_order_create(customer=customer, lines=lines, actor=StaffFactory(), **kwargs)


def test_draft_copies_catalog_data_and_accepts_free_text_lines():
    product = ProductFactory(sku="MUG-1", name="Mug", price=Decimal("12.50"), tax_rate=Decimal("0.2000"))
    draft = _draft(
        lines=[
            DraftLineSpec(sku="MUG-1", quantity=2),
            DraftLineSpec(
                description="Consulting, 3 h", quantity=3, unit_price=Decimal("80.00"), tax_rate=Decimal("0.1000")
            ),
        ],
        shipping=Decimal("0"),
    )

    catalog, free = draft.lines.order_by("id")
    assert (catalog.product_id, catalog.sku, catalog.description, catalog.unit_price) == (
        product.pk,
        "MUG-1",
        "Mug",
        Decimal("12.50"),
    )
    assert (free.product_id, free.sku, free.line_total) == (None, "", Decimal("240.00"))
    assert draft.currency == "EUR"
    totals = draft_order_totals(draft=draft)
    assert totals.subtotal == Decimal("265.00")
    assert totals.tax_by_rate == {Decimal("0.1000"): Decimal("24.00"), Decimal("0.2000"): Decimal("5.00")}
    assert totals.total == Decimal("294.00")


def test_bad_lines_are_all_reported_and_nothing_is_created():
    other = ProductFactory(sku="USD-1", currency="USD")
    with pytest.raises(ValidationFailed) as caught:
        _draft(
            lines=[
                DraftLineSpec(sku="NOPE", quantity=1),
                DraftLineSpec(description="", quantity=1, unit_price=Decimal("1.00"), tax_rate=Decimal("0.2")),
                DraftLineSpec(sku=other.sku, quantity=1),
                DraftLineSpec(description="x", quantity=1, unit_price=Decimal("1.001"), tax_rate=Decimal("1.5")),
            ],
            currency="EUR",
        )
    assert set(caught.value.details["lines"]) == {"0", "1", "2", "3"}
    assert set(caught.value.details["lines"]["3"]) == {"unit_price", "tax_rate"}
    assert not DraftOrder.objects.exists()
    assert not DraftOrderLine.objects.exists()


def test_finalize_reserves_stock_without_expiry_places_order_and_creates_pending_invoice(
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    enqueued = record_numbering_enqueues(monkeypatch)
    product = ProductFactory(price=Decimal("12.50"), on_hand=10)
    customer = UserFactory()
    BillingProfile.objects.create(user=customer, company="ACME SA", line1="2 Rue X", city="Lyon", country="FR")
    draft = _draft(
        customer=customer,
        lines=[
            DraftLineSpec(sku=product.sku, quantity=3),
            DraftLineSpec(sku=product.sku, quantity=1),
            DraftLineSpec(description="Setup", quantity=1, unit_price=Decimal("50.00"), tax_rate=Decimal("0.2")),
        ],
        due_days=45,
        allow_partial=True,
        notes="PO 4711",
    )

    with django_capture_on_commit_callbacks(execute=True):
        finalized = draft_order_finalize(draft_id=draft.pk)
        assert enqueued == []  # numbering is enqueued on commit, never before

    order = finalized.order
    assert finalized.status == DraftOrderStatus.FINALIZED
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert order.reservation_expires_at is None
    assert order.placed_at is not None
    assert order.user == customer
    assert order.total == Decimal("120.00")  # 100.00 net + 20% VAT
    assert order.lines.filter(product__isnull=True).count() == 1
    stock = Stock.objects.get(product=product)
    assert (stock.on_hand, stock.reserved) == (10, 4)
    reservations = Reservation.objects.filter(order_line__order=order)
    assert [(r.quantity, r.status, r.expires_at) for r in reservations] == [
        (3, ReservationStatus.ACTIVE, RESERVATION_NO_EXPIRY),
        (1, ReservationStatus.ACTIVE, RESERVATION_NO_EXPIRY),
    ]
    invoice = Invoice.objects.get(order=order)
    assert (invoice.status, invoice.number, invoice.due_days, invoice.allow_partial) == ("pending", None, 45, True)
    assert invoice.notes == "PO 4711"
    assert invoice.billing_details["company"] == "ACME SA"
    assert invoice.seller_details["name"]
    assert invoice.tax_rows == [{"rate": Decimal("0.2000"), "net": Decimal("100.00"), "tax": Decimal("20.00")}]
    assert enqueued == [invoice.pk]  # exactly one numbering enqueue, for this invoice
    assert OutboxEvent.objects.filter(event_type="draft_order.finalized", aggregate_id=str(draft.pk)).exists()
    assert OutboxEvent.objects.filter(event_type="order.created", payload__source="draft_order").count() == 1

    issued = invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=0))
    assert issued.status == InvoiceStatus.ISSUED
    assert issued.number == 1
    assert issued.due_date == issued.issued_at.date() + timedelta(days=45)


def test_the_reservation_sweeper_never_cancels_a_staff_billed_order():
    draft = draft_order_finalize(draft_id=_draft().pk)

    assert orders_expire_unpaid(now=timezone.now() + timedelta(days=3650)) == 0
    draft.order.refresh_from_db()
    assert draft.order.status == OrderStatus.PENDING_PAYMENT
    assert Reservation.objects.filter(order_line__order=draft.order, status=ReservationStatus.ACTIVE).count() == 1


def test_payment_terms_come_from_the_draft_else_the_profile_else_settings(settings):
    settings.INVOICE_PAYMENT_TERMS_DAYS = 30
    customer = UserFactory()
    default = draft_order_finalize(draft_id=_draft(customer=customer).pk)
    BillingProfile.objects.create(user=customer, payment_terms_days=60)
    profiled = draft_order_finalize(draft_id=_draft(customer=customer).pk)
    explicit = draft_order_finalize(draft_id=_draft(customer=customer, due_days=7).pk)

    assert [d.order.invoice.due_days for d in (default, profiled, explicit)] == [30, 60, 7]


def test_insufficient_stock_names_the_skus_and_changes_nothing():
    short = ProductFactory(sku="SHORT-1", on_hand=2)
    plenty = ProductFactory(sku="PLENTY-1", on_hand=50)
    draft = _draft(lines=[DraftLineSpec(sku="PLENTY-1", quantity=5), DraftLineSpec(sku="SHORT-1", quantity=3)])
    events_before = OutboxEvent.objects.count()

    with pytest.raises(InsufficientStock) as caught:
        draft_order_finalize(draft_id=draft.pk)

    assert caught.value.status_code == 409
    assert caught.value.details["skus"] == ["SHORT-1"]
    draft.refresh_from_db()
    assert draft.status == DraftOrderStatus.DRAFT
    assert draft.order_id is None
    assert not Order.objects.exists()
    assert not Invoice.objects.exists()
    assert [Stock.objects.get(product=p).reserved for p in (short, plenty)] == [0, 0]
    assert OutboxEvent.objects.count() == events_before


def test_finalizing_twice_is_refused_and_changes_nothing():
    draft = draft_order_finalize(draft_id=_draft().pk)
    with pytest.raises(IllegalTransition):
        draft_order_finalize(draft_id=draft.pk)
    with pytest.raises(IllegalTransition):
        draft_order_set_lines(draft_id=draft.pk, lines=[DraftLineSpec(sku="X", quantity=1)])
    assert Order.objects.count() == 1
    assert Invoice.objects.count() == 1
    assert draft.lines.count() == 1


def test_an_empty_draft_cannot_be_finalized():
    draft = _draft()
    draft_order_set_lines(draft_id=draft.pk, lines=[])
    with pytest.raises(ValidationFailed):
        draft_order_finalize(draft_id=draft.pk)
    assert not Order.objects.exists()


def test_correction_copies_the_order_into_a_new_draft():
    product = ProductFactory(price=Decimal("9.99"))
    original = draft_order_finalize(
        draft_id=_draft(
            lines=[
                DraftLineSpec(sku=product.sku, quantity=2),
                DraftLineSpec(description="Fee", quantity=1, unit_price=Decimal("5.00"), tax_rate=Decimal("0")),
            ],
            allow_partial=True,
            notes="n",
        ).pk
    )
    product.price = Decimal("20.00")
    product.save()

    copy = draft_order_create_from_order(order_id=original.order_id)

    assert copy.status == DraftOrderStatus.DRAFT
    assert copy.customer_id == original.customer_id
    assert (copy.allow_partial, copy.notes) == (True, "n")
    assert [(line.sku, line.quantity, line.unit_price) for line in copy.lines.order_by("id")] == [
        (product.sku, 2, Decimal("9.99")),
        ("", 1, Decimal("5.00")),
    ]


# --- The admin: every write goes through the services -------------------------------------------


def _admin_client(client):
    client.force_login(StaffFactory(is_superuser=True))
    return client


def _inline(rows: list[dict], prefix: str = "lines") -> dict:
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        data.update({f"{prefix}-{i}-{k}": v for k, v in row.items()})
    return data


def test_admin_creates_a_draft_shows_totals_and_finalizes(client):
    admin = _admin_client(client)
    customer = UserFactory()
    product = ProductFactory(price=Decimal("79.00"), on_hand=5)
    form = {
        "customer": customer.pk,
        "currency": "EUR",
        "due_days": "14",
        "shipping": "0.00",
        "coupon_code": "",
        "notes": "",
        "_continue": "1",
        **_inline(
            [
                {"product": product.pk, "quantity": "2"},
                {"description": "Installation", "quantity": "1", "unit_price": "42.00", "tax_rate": "20"},
            ]
        ),
    }

    response = admin.post("/admin/orders/draftorder/add/", form)

    assert response.status_code == 302, response.content.decode()[:3000]
    draft = DraftOrder.objects.get(customer=customer)
    assert (draft.due_days, draft.lines.count()) == (14, 2)
    assert OutboxEvent.objects.filter(event_type="draft_order.created", aggregate_id=str(draft.pk)).exists()
    page = admin.get(f"/admin/orders/draftorder/{draft.pk}/change/").content.decode()
    assert 'data-label="Total">240.00 EUR' in page
    assert 'id="finalize-draft"' in page

    assert admin.get(f"/admin/orders/draftorder/{draft.pk}/finalize/").status_code == 302  # GET does nothing
    assert DraftOrder.objects.get(pk=draft.pk).status == DraftOrderStatus.DRAFT
    finalized = admin.post(f"/admin/orders/draftorder/{draft.pk}/finalize/", follow=True).content.decode()

    draft.refresh_from_db()
    assert draft.status == DraftOrderStatus.FINALIZED
    assert f"Draft order #{draft.pk} finalized" in finalized
    assert 'id="open-invoice"' in finalized
    assert 'id="finalize-draft"' not in finalized  # finalized: read-only


def test_admin_reports_stock_shortage_on_finalize_and_changes_nothing(client):
    admin = _admin_client(client)
    product = ProductFactory(sku="RARE-1", on_hand=1)
    draft = _draft(lines=[DraftLineSpec(sku=product.sku, quantity=3)])

    page = admin.post(f"/admin/orders/draftorder/{draft.pk}/finalize/", follow=True).content.decode()

    assert "not finalized" in page
    assert "RARE-1" in page
    assert not Order.objects.exists()
    assert Stock.objects.get(product=product).reserved == 0


def test_admin_free_text_line_needs_price_and_rate(client):
    admin = _admin_client(client)
    form = {
        "customer": UserFactory().pk,
        "currency": "EUR",
        "shipping": "0.00",
        **_inline([{"description": "Something", "quantity": "1"}]),
    }
    response = admin.post("/admin/orders/draftorder/add/", form)
    assert response.status_code == 200
    assert "Required for a line without a product." in response.content.decode()
    assert not DraftOrder.objects.exists()
