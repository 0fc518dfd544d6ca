"""Customer e-mails end to end against a real SMTP server: one per event, text and HTML,
the PDFs attached, failures retried with backoff, never sent twice."""

import logging
import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from common.audit import AuditLogEntry
from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import place_order
from flows.order_paid import order_place_paid
from invoicing.models import Invoice
from invoicing.services import FaultInjector, invoice_assign_number
from notifications.models import CustomerEmail, EmailDispatchCursor, EmailKind, EmailState
from notifications.services import CURSOR, customer_email_send, customer_emails_dispatch
from notifications.tasks import send_email
from orders.models import Order, OrderStatus
from orders.services import order_ship, order_transition
from outbox.models import OutboxEvent
from outbox.services import outbox_record

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]


def deliver() -> list[str]:
    """What the documents worker does, without a broker: dispatch, then send each due row."""
    customer_emails_dispatch()
    due = CustomerEmail.objects.filter(state=EmailState.PENDING, next_attempt_at__lte=timezone.now())
    return [customer_email_send(email_id=pk) for pk in due.order_by("id").values_list("pk", flat=True)]


def _parts(message) -> dict[str, object]:
    return {part.get_content_type(): part for part in message.walk() if not part.is_multipart()}


def _paid_with_invoice(user=None) -> tuple[Order, Invoice]:
    order = place_order(user=user)
    order_place_paid(order_id=order.pk)
    invoice = invoice_assign_number(invoice_id=Invoice.objects.get(order=order).pk, fault=FaultInjector(rate=0))
    return order, invoice


def test_a_storefront_order_gets_one_confirmation_in_text_and_html(smtp):
    user = UserFactory(email="ada@example.com")
    order = place_order(user=user, product=ProductFactory(name="Blue Mug", on_hand=5), quantity=2)

    assert deliver() == [EmailState.SENT]
    assert deliver() == []  # a second pass finds nothing to do

    assert len(smtp.received) == 1
    got = smtp.received[0]
    assert got.rcpt_tos == ["ada@example.com"]
    assert str(got.message["Subject"]) == f"Order #{order.pk} received: {order.total} {order.currency}"
    parts = _parts(got.message)
    assert set(parts) == {"text/plain", "text/html"}
    assert "2 x Blue Mug" in parts["text/plain"].get_content()
    assert f"/orders/{order.pk}/" in parts["text/html"].get_content()
    email = CustomerEmail.objects.get()
    assert (email.kind, email.state, email.tries, email.to) == (EmailKind.ORDER_CONFIRMATION, "sent", 1, user.email)
    assert email.sent_at is not None
    assert email.subject == str(got.message["Subject"])
    assert str(got.message["Message-ID"]).strip() == email.message_id
    assert got.message["Auto-Submitted"] == "auto-generated"


def test_payment_receipt_and_the_invoice_with_its_pdf(smtp):
    order, invoice = _paid_with_invoice()

    deliver()

    assert sorted(str(r.message["X-Customer-Email"]).split()[0] for r in smtp.received) == [
        "invoice_issued", "order_confirmation", "payment_receipt",
    ]  # fmt: skip
    (mail,) = smtp.by_kind("invoice_issued")
    assert str(mail.message["Subject"]) == f"Invoice {invoice.display_number} for order #{order.pk}"
    (pdf,) = [p for p in mail.message.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert pdf.get_filename() == f"invoice-{invoice.display_number}.pdf"
    assert pdf.get_content().startswith(b"%PDF-")
    assert smtp.by_kind("payment_receipt")[0].message.get_body(("plain",)).get_content().count(str(order.total)) >= 1


def test_the_invoice_pdf_is_rendered_for_the_mail_when_the_worker_has_not_yet(smtp):
    from invoicing.models import InvoiceDocument

    _, invoice = _paid_with_invoice()
    InvoiceDocument.objects.filter(invoice=invoice).delete()

    deliver()

    assert len(smtp.by_kind("invoice_issued")) == 1
    assert InvoiceDocument.objects.filter(invoice=invoice).exists()


def test_shipped_mail_carries_carrier_and_tracking_link(smtp):
    order, _ = _paid_with_invoice()
    deliver()
    url = "https://tracking.example.com/track?n=1Z999AA10123456784&lang=en"
    order_ship(order_id=order.pk, carrier="UPS", tracking_number="1Z999AA10123456784", tracking_url=url)

    deliver()

    (mail,) = smtp.by_kind("order_shipped")
    text = mail.message.get_body(("plain",)).get_content()
    html = mail.message.get_body(("html",)).get_content()
    assert "with UPS" in text
    assert "1Z999AA10123456784" in text
    assert url in text
    assert 'href="https://tracking.example.com/track?n=1Z999AA10123456784&amp;lang=en"' in html


def test_cancelled_order_gets_one_cancellation(smtp):
    order = place_order()
    order_transition(order=order, to=OrderStatus.CANCELLED, reason="reservation expired")

    deliver()
    deliver()

    assert [str(r.message["X-Customer-Email"]).split()[0] for r in smtp.received] == [
        "order_confirmation", "order_cancelled",
    ]  # fmt: skip
    assert str(smtp.by_kind("order_cancelled")[0].message["Subject"]) == f"Order #{order.pk} cancelled"


def test_the_send_task_run_twice_sends_once(smtp):
    place_order()
    customer_emails_dispatch()
    email = CustomerEmail.objects.get()

    assert send_email.apply(args=(email.pk,)).get() == EmailState.SENT
    assert send_email.apply(args=(email.pk,)).get() == EmailState.SENT
    assert customer_email_send(email_id=email.pk) == EmailState.SENT

    assert len(smtp.received) == 1
    assert CustomerEmail.objects.get().tries == 1


def test_a_refused_send_is_retried_with_backoff_then_sent_once(smtp, settings, caplog):
    settings.EMAIL_RETRY_BASE_S, settings.EMAIL_RETRY_MAX_S = 60, 600
    place_order(user=UserFactory(email="grace.hopper@example.com"))
    smtp.refuse = True

    with caplog.at_level(logging.WARNING, logger="notifications.services"):
        assert deliver() == [EmailState.PENDING]

    email = CustomerEmail.objects.get()
    assert email.tries == 1
    assert email.state == EmailState.PENDING
    assert "451" in email.last_error
    assert timedelta(seconds=29) < email.next_attempt_at - email.last_attempt_at <= timedelta(seconds=60)
    assert "grace.hopper@example.com" not in caplog.text
    assert "g***@example.com" in caplog.text
    assert deliver() == []  # not due yet: nothing is sent early
    assert smtp.received == []

    smtp.refuse = False
    CustomerEmail.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now())
    assert deliver() == [EmailState.SENT]
    assert len(smtp.received) == 1
    assert CustomerEmail.objects.get().tries == 2
    assert CustomerEmail.objects.get().last_error == ""


def test_an_unreachable_server_times_out_and_gives_up_after_max_tries(smtp, settings, smtp_server):
    settings.EMAIL_PORT = 1  # nothing listens there: connection refused
    settings.EMAIL_MAX_TRIES = 3
    place_order()
    customer_emails_dispatch()
    email = CustomerEmail.objects.get()

    states = []
    for _ in range(3):
        CustomerEmail.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now())
        states.append(customer_email_send(email_id=email.pk))

    assert states == [EmailState.PENDING, EmailState.PENDING, EmailState.FAILED]
    email.refresh_from_db()
    assert email.tries == 3
    assert "ConnectionRefusedError" in email.last_error
    assert customer_email_send(email_id=email.pk) == EmailState.FAILED  # given up: not tried again


def test_staff_send_a_failed_mail_again_from_the_admin_audited(smtp, client, settings):
    settings.EMAIL_MAX_TRIES = 1
    smtp.refuse = True
    place_order()
    deliver()
    email = CustomerEmail.objects.get()
    assert email.state == EmailState.FAILED
    smtp.refuse = False
    client.force_login(StaffFactory(is_superuser=True))

    listing = client.get("/admin/notifications/customeremail/")
    response = client.post(
        "/admin/notifications/customeremail/", {"action": "send_again", "_selected_action": [email.pk]}
    )

    assert listing.status_code == 200
    assert "451" in listing.content.decode()
    assert response.status_code == 302
    email.refresh_from_db()
    assert (email.state, email.kicked_at is not None) == (EmailState.PENDING, True)
    assert AuditLogEntry.objects.filter(action="customer_email.retry").count() == 1
    assert deliver() == [EmailState.SENT]
    assert len(smtp.received) == 1


def test_staff_role_sees_the_mails_but_cannot_delete_them(client):
    from common.roles import staff_group_sync

    staff = StaffFactory()
    staff.groups.add(staff_group_sync())
    client.force_login(staff)

    assert client.get("/admin/notifications/customeremail/").status_code == 200
    assert not staff.has_perm("notifications.delete_customeremail")


def test_no_address_is_skipped_with_its_reason(smtp):
    place_order(user=UserFactory(email=""))

    assert deliver() == []

    email = CustomerEmail.objects.get()
    assert (email.state, email.skip_reason) == (EmailState.SKIPPED, "the customer has no e-mail address")
    assert smtp.received == []


def test_a_staff_draft_order_gets_no_confirmation_nor_automatic_invoice_but_a_receipt(smtp):
    from flows.draft_finalize import draft_order_finalize
    from orders.services import DraftLineSpec, draft_order_create

    product = ProductFactory(on_hand=5)
    draft = draft_order_create(customer=UserFactory(), lines=[DraftLineSpec(quantity=1, sku=product.sku)])
    finalized = draft_order_finalize(draft_id=draft.pk)
    invoice = Invoice.objects.get(order_id=finalized.order_id)
    invoice_assign_number(invoice_id=invoice.pk, fault=FaultInjector(rate=0))

    deliver()

    skipped = CustomerEmail.objects.filter(state=EmailState.SKIPPED)
    assert sorted(skipped.values_list("kind", flat=True)) == [EmailKind.INVOICE_ISSUED, EmailKind.ORDER_CONFIRMATION]
    assert smtp.received == []
    order = Order.objects.get(pk=finalized.order_id)
    order_place_paid(order_id=order.pk)
    deliver()
    assert [str(r.message["X-Customer-Email"]).split()[0] for r in smtp.received] == ["payment_receipt"]


def test_an_event_committed_late_is_still_found_within_the_overlap(smtp, settings):
    """A transaction may commit after a later event was already read: its id (time of
    creation) is behind the cursor. The overlap window re-reads that far back."""
    order = place_order()
    deliver()
    EmailDispatchCursor.objects.filter(name=CURSOR).update(position=timezone.now() + timedelta(seconds=5))
    late = _event_created_ago(order=order, seconds=settings.EMAIL_DISPATCH_OVERLAP_S - 60)
    too_old = _event_created_ago(order=order, seconds=settings.EMAIL_DISPATCH_OVERLAP_S + 60)

    deliver()

    assert set(CustomerEmail.objects.values_list("event_id", flat=True)) >= {late.pk}
    assert not CustomerEmail.objects.filter(event_id=too_old.pk).exists()  # the documented bound
    assert len(smtp.by_kind("order_cancelled")) == 1


def _event_created_ago(*, order: Order, seconds: float) -> OutboxEvent:
    with transaction.atomic():
        event = outbox_record(event_type="order.cancelled", aggregate=order, payload={"order_id": order.pk})
    at = timezone.now() - timedelta(seconds=seconds)
    old_id = uuid.UUID(int=(int(at.timestamp() * 1000) << 80) | (event.pk.int & ((1 << 80) - 1)))
    OutboxEvent.objects.filter(pk=event.pk).update(id=old_id, created_at=at)
    return OutboxEvent.objects.get(pk=old_id)


def test_installing_the_app_does_not_mail_the_past(smtp):
    order = place_order()
    EmailDispatchCursor.objects.filter(name=CURSOR).delete()
    two_days_ago = int((timezone.now() - timedelta(days=2)).timestamp() * 1000) << 80
    for i, event in enumerate(OutboxEvent.objects.filter(aggregate_id=str(order.pk))):
        OutboxEvent.objects.filter(pk=event.pk).update(id=uuid.UUID(int=two_days_ago | (i + 1)))

    assert deliver() == []
    assert CustomerEmail.objects.count() == 0


def test_refund_issued_mail_attaches_the_credit_note_pdf(smtp):
    from invoicing.services import credit_notes_number_due
    from invoicing.tests.helpers import paid_order, refund_succeeded

    order = paid_order()
    invoice = invoice_assign_number(invoice_id=Invoice.objects.get(order=order).pk, fault=FaultInjector(rate=0))
    line = order.lines.get()
    note = refund_succeeded(order=order, lines=[(line, 1, line.unit_price)])
    credit_notes_number_due(include_id=note.pk, fault=FaultInjector(rate=0))
    note.refresh_from_db()
    assert note.number is not None

    deliver()
    deliver()

    (mail,) = smtp.by_kind("refund_issued")
    assert str(mail.message["Subject"]) == (
        f"Refund of {note.total} {note.currency} for order #{order.pk} (credit note {note.display_number})"
    )
    text = mail.message.get_body(("plain",)).get_content()
    assert f"corrects invoice {invoice.display_number}" in text
    (pdf,) = mail.message.iter_attachments()
    assert pdf.get_filename() == f"credit-note-{note.display_number}.pdf"
    assert pdf.get_content().startswith(b"%PDF-")


def test_a_crash_after_the_server_accepted_resends_with_the_same_message_id(smtp, monkeypatch):
    """The one window of "at least once": the process dies after the SMTP server took the
    mail and before the sent marker committed. The row is still pending (nothing counted),
    the next try sends it again, and the receiver sees the same Message-ID twice."""
    from notifications import services

    place_order()
    customer_emails_dispatch()
    email = CustomerEmail.objects.get()
    real_update = services.CustomerEmail.objects.filter

    class Crash(BaseException):  # like SIGKILL: no `except Exception` catches it
        pass

    def crash_on_marking_sent(*args, **kwargs):
        if kwargs.get("pk") == email.pk and smtp.received:
            raise Crash
        return real_update(*args, **kwargs)

    monkeypatch.setattr(services.CustomerEmail.objects, "filter", crash_on_marking_sent)
    with pytest.raises(Crash):
        customer_email_send(email_id=email.pk)
    monkeypatch.undo()
    assert CustomerEmail.objects.get().state == EmailState.PENDING
    assert CustomerEmail.objects.get().tries == 0

    assert customer_email_send(email_id=email.pk) == EmailState.SENT

    ids = [str(r.message["Message-ID"]).strip() for r in smtp.received]
    assert ids == [email.message_id, email.message_id]


def test_the_dispatcher_reads_in_batches_and_moves_past_an_event_it_cannot_mail(smtp):
    first = place_order()
    with transaction.atomic():  # names an order that does not exist: no row can be made for it
        outbox_record(event_type="order.cancelled", aggregate=first, payload={"order_id": 10**9})
    for _ in range(3):
        place_order()

    assert customer_emails_dispatch(batch_size=1) == 4  # ends, although one batch made no row

    assert CustomerEmail.objects.count() == 4
    assert customer_emails_dispatch(batch_size=1) == 0


def test_the_order_admin_page_lists_the_mails_of_the_order(smtp, client):
    order = place_order()
    deliver()
    client.force_login(StaffFactory(is_superuser=True))

    html = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()

    assert "Customer emails" in html or "customer emails" in html.lower()
    assert "Order confirmation" in html


def test_the_order_email_given_at_checkout_is_where_its_mails_go(smtp):
    from orders.services import cart_add_item, cart_get_or_create, checkout_place_order

    user = UserFactory(email="account@example.com")
    ProductFactory(sku="MUG-9", on_hand=3)
    cart = cart_get_or_create(user=user)
    cart_add_item(cart=cart, sku="MUG-9", quantity=1)
    checkout_place_order(
        cart=cart,
        user=user,
        shipping_address={"name": "A", "line1": "1", "city": "P", "postal_code": "1", "country": "FR"},
        email="orders@example.com",
    )

    assert deliver() == [EmailState.SENT]
    assert smtp.received[0].rcpt_tos == ["orders@example.com"]
