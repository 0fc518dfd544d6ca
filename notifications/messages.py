"""What each customer e-mail says: subject, plain text and HTML from
templates/notifications/<kind>{_subject.txt,.txt,.html}, and its attachment. Built from the
rows as they are at send time (tracking number, PDF), never from a copy in the event."""

from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from notifications.models import CustomerEmail, EmailKind
from orders.models import Order


def _invoice_part(*, invoice_id: int) -> tuple[dict[str, Any], tuple[str, bytes]]:
    """The invoice and its PDF: the stored one, or rendered now if the worker has not yet."""
    from invoicing.models import Invoice
    from invoicing.pdf import invoice_pdf

    attachment = invoice_pdf(invoice_id=invoice_id)
    return {"invoice": Invoice.objects.get(pk=invoice_id)}, attachment


def _credit_note_part(*, credit_note_id: int) -> tuple[dict[str, Any], tuple[str, bytes]]:
    """The credit note, its lines and its PDF (stored, or rendered now)."""
    from invoicing.models import CreditNote
    from invoicing.pdf import credit_note_pdf

    attachment = credit_note_pdf(credit_note_id=credit_note_id)
    credit_note = CreditNote.objects.select_related("invoice").get(pk=credit_note_id)
    return {"credit_note": credit_note, "credit_lines": list(credit_note.lines.all())}, attachment


def customer_email_context(*, email: CustomerEmail) -> tuple[dict[str, Any], tuple[str, bytes] | None]:
    order = Order.objects.select_related("user").prefetch_related("lines").get(pk=email.order_id)
    payload = email.event.payload
    context: dict[str, Any] = {
        "order": order,
        "lines": list(order.lines.all()),
        "customer_name": order.shipping_address.get("name") or order.user.get_full_name() or order.user.get_username(),
        "order_url": f"{settings.SITE_URL}{reverse('order', args=[order.pk])}",
        "shop": settings.SELLER,
        "site_url": settings.SITE_URL,
        "reason": payload.get("reason", ""),
    }
    attachment = None
    if email.kind == EmailKind.INVOICE_ISSUED:
        extra, attachment = _invoice_part(invoice_id=int(payload["invoice_id"]))
        context.update(extra)
    elif email.kind == EmailKind.REFUND_ISSUED:
        extra, attachment = _credit_note_part(credit_note_id=int(payload["credit_note_id"]))
        context.update(extra)
    elif email.kind == EmailKind.ORDER_SHIPPED:
        # Read from the order row: the event names the order only (and a correction made
        # before the mail leaves is what the customer should see).
        context.update(
            carrier=order.shipping_carrier, tracking_number=order.tracking_number, tracking_url=order.tracking_url
        )
    return context, attachment


def customer_email_message(*, email: CustomerEmail) -> EmailMultiAlternatives:
    """The message for one CustomerEmail row: text and HTML alternatives, the PDF attached
    (invoice, credit note), a Message-ID that stays the same for every try."""
    context, attachment = customer_email_context(email=email)
    subject = " ".join(render_to_string(f"notifications/{email.kind}_subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"notifications/{email.kind}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email.to],
        reply_to=[settings.SELLER.get("email") or settings.DEFAULT_FROM_EMAIL],
        # Auto-Submitted (RFC 3834): auto-responders do not answer a machine's mail.
        headers={
            "Message-ID": email.message_id,
            "Auto-Submitted": "auto-generated",
            "X-Customer-Email": f"{email.kind} {email.pk}",
        },
    )
    message.attach_alternative(render_to_string(f"notifications/{email.kind}.html", context), "text/html")
    if attachment is not None:
        message.attach(attachment[0], attachment[1], "application/pdf")
    return message
