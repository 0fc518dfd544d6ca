"""Customer e-mails: rows from outbox events (dispatch), kicks of due rows, and the one send.

Locks: the dispatcher holds its cursor row (dispatchers take turns); a send holds one
CustomerEmail row, alone, while it talks to the SMTP server. Neither is ever taken
together with an order, invoice or any row of flows/__init__.py's lock order."""

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from common.audit import audit_record
from common.backoff import backoff_s
from common.commit import on_commit_robust
from common.logs import mask_text
from notifications.models import KIND_FOR_EVENT, CustomerEmail, EmailDispatchCursor, EmailKind, EmailState
from orders.models import Order
from outbox.models import OutboxEvent

logger = logging.getLogger(__name__)

CURSOR = "customer-emails"


def _uuid7_floor(at: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of the millisecond `at`: outbox ids are UUIDv7, so an id range
    is a time range read from the primary key index."""
    return uuid.UUID(int=(int(at.timestamp() * 1000) & ((1 << 48) - 1)) << 80)


def _recipient_and_skip(*, event: OutboxEvent, order: Order | None, invoice_email: str) -> tuple[str, str]:
    """(address, skip reason): an empty reason means the e-mail is to be sent."""
    if order is None:
        return "", "the order does not exist"
    draft = getattr(order, "draft", None) is not None
    if draft and event.event_type in ("order.created", "invoice.issued"):
        # Staff-billed: staff send the invoice themselves, with its payment link
        # (invoice.sent); an automatic copy would reach the customer twice.
        return "", "staff draft order: staff send the invoice with its payment link"
    address = invoice_email or order.email or order.user.email
    if not address:
        return "", "the customer has no e-mail address"
    return address, ""


def customer_emails_dispatch(*, batch_size: int | None = None) -> int:
    """Create the CustomerEmail rows owed for new outbox events, then kick the due ones;
    returns how many rows were created.

    Reads events from the cursor's position minus EMAIL_DISPATCH_OVERLAP_S, skipping those
    that already have their row (an anti-join), so an event whose transaction committed
    after a later one was read is still found. The rows are unique per (event, kind):
    concurrent dispatchers take turns on the cursor row, and a conflict would be ignored."""
    batch_size = batch_size or settings.EMAIL_DISPATCH_BATCH
    created = 0
    after: uuid.UUID | None = None  # the last event read by this run: each batch moves on
    while True:
        with transaction.atomic():
            started = timezone.now()
            cursor = EmailDispatchCursor.objects.select_for_update().filter(name=CURSOR).first()
            if cursor is None:  # a flushed database; the migration creates it on deploy
                EmailDispatchCursor.objects.bulk_create(
                    [EmailDispatchCursor(name=CURSOR, position=started)], ignore_conflicts=True
                )
                cursor = EmailDispatchCursor.objects.select_for_update().get(name=CURSOR)
            floor = _uuid7_floor(cursor.position - timedelta(seconds=settings.EMAIL_DISPATCH_OVERLAP_S))
            window = Q(id__gte=floor) if after is None else Q(id__gt=after)
            events = list(
                OutboxEvent.objects.filter(window, event_type__in=list(KIND_FOR_EVENT))
                .exclude(Exists(CustomerEmail.objects.filter(event_id=OuterRef("pk"))))
                .order_by("id")[:batch_size]
            )
            rows = _rows_for(events=events, now=started)
            created += len(CustomerEmail.objects.bulk_create(rows, ignore_conflicts=True))
            full = len(events) == batch_size
            if full:
                after = events[-1].pk
            position = events[-1].created_at if full else started
            if position > cursor.position:
                EmailDispatchCursor.objects.filter(name=CURSOR).update(position=position, updated_at=started)
        if not full:
            break
    customer_emails_kick_due()
    return created


def _rows_for(*, events: list[OutboxEvent], now: datetime) -> list[CustomerEmail]:
    from invoicing.models import Invoice

    order_ids = {int(e.payload["order_id"]) for e in events if e.payload.get("order_id")}
    orders = Order.objects.select_related("user", "draft").in_bulk(order_ids)
    invoice_ids = {int(e.payload["invoice_id"]) for e in events if e.payload.get("invoice_id")}
    invoice_emails = {
        pk: str(details.get("email") or "")
        for pk, details in Invoice.objects.filter(pk__in=invoice_ids).values_list("pk", "billing_details")
    }
    rows = []
    for event in events:
        order_id = event.payload.get("order_id")
        order = orders.get(int(order_id)) if order_id else None
        if order is None:
            logger.error("outbox event %s (%s) names no existing order; no e-mail", event.pk, event.event_type)
            continue
        invoice_email = invoice_emails.get(int(event.payload.get("invoice_id") or 0), "")
        to, skip = _recipient_and_skip(event=event, order=order, invoice_email=invoice_email)
        rows.append(
            CustomerEmail(
                event=event,
                kind=KIND_FOR_EVENT[event.event_type],
                order=order,
                to=to,
                state=EmailState.SKIPPED if skip else EmailState.PENDING,
                skip_reason=skip,
                next_attempt_at=now,
            )
        )
    return rows


def customer_emails_kick_due(*, limit: int = 500) -> list[int]:
    """Enqueue the send of every due pending row not kicked within EMAIL_KICK_LEASE_S (a
    lost message is re-kicked after the lease, never lost). Rows being sent are skipped."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.EMAIL_KICK_LEASE_S)
    with transaction.atomic():
        ids = list(
            CustomerEmail.objects.select_for_update(skip_locked=True)
            .filter(state=EmailState.PENDING, next_attempt_at__lte=now)
            .exclude(kicked_at__gt=stale)
            .order_by("next_attempt_at", "id")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            CustomerEmail.objects.filter(pk__in=ids).update(kicked_at=now)
            on_commit_robust(hook="notifications.send_email", fn=lambda: _enqueue(ids))
    return ids


def _enqueue(ids: list[int]) -> None:
    from notifications.tasks import send_email

    for email_id in ids:
        send_email.delay(email_id)


def customer_email_send(*, email_id: int) -> str:
    """Send one pending, due e-mail, once; returns the row's state afterwards.

    The message (with its PDF) is built first, without locks; then the row is locked, its
    state checked again, the message handed to the SMTP server and the row marked sent in
    that same transaction: a duplicate task waits on the lock and finds it sent. A failed
    send records the error and the next try (common.backoff); after EMAIL_MAX_TRIES the row
    is failed. A crash after the server accepted and before the commit sends it again on the
    next try, with the same Message-ID (at least once at the SMTP boundary, as everywhere)."""
    from notifications.messages import customer_email_message

    email = CustomerEmail.objects.select_related("order__user", "event").filter(pk=email_id).first()
    if email is None or email.state != EmailState.PENDING or email.next_attempt_at > timezone.now():
        return email.state if email else "missing"
    error = ""
    message = None
    try:
        message = customer_email_message(email=email)
    except DatabaseError:
        raise  # the database, not the e-mail: the task retries, nothing is counted
    except Exception as exc:
        error = f"building the message: {type(exc).__name__}: {exc}"
    with transaction.atomic():
        locked = CustomerEmail.objects.select_for_update().get(pk=email_id)
        now = timezone.now()
        if locked.state != EmailState.PENDING or locked.next_attempt_at > now:
            return locked.state  # another run sent it (or failed it) meanwhile
        if message is not None:
            try:
                message.send()
            except Exception as exc:  # refused, timed out, unreachable: all retried
                error = f"{type(exc).__name__}: {exc}"
        tries = locked.tries + 1
        if not error:
            CustomerEmail.objects.filter(pk=email_id).update(
                state=EmailState.SENT, sent_at=now, tries=tries, last_attempt_at=now, last_error="",
                subject=str(message.subject)[:200] if message else "", updated_at=now,
            )  # fmt: skip
            logger.info("customer e-mail %s (%s) sent to %s", email_id, email.kind, mask_text(email.to))
            return EmailState.SENT
        gave_up = tries >= settings.EMAIL_MAX_TRIES
        delay = backoff_s(retries=tries - 1, base_s=settings.EMAIL_RETRY_BASE_S, max_s=settings.EMAIL_RETRY_MAX_S)
        CustomerEmail.objects.filter(pk=email_id).update(
            state=EmailState.FAILED if gave_up else EmailState.PENDING,
            tries=tries,
            last_attempt_at=now,
            last_error=mask_text(error)[:2000],
            next_attempt_at=now if gave_up else now + timedelta(seconds=delay),
            kicked_at=None,  # this kick is used up: the next one is due at next_attempt_at, not after the lease
            updated_at=now,
        )
    logger.warning(
        "customer e-mail %s (%s) to %s failed (try %s%s): %s", email_id, email.kind, mask_text(email.to), tries,
        ", giving up" if gave_up else f", next in {delay:.0f}s", mask_text(error),
    )  # fmt: skip
    return EmailState.FAILED if gave_up else EmailState.PENDING


def customer_email_retry(*, email_id: int, actor: Any) -> bool:
    """Staff: send a failed (or pending) e-mail again now. A sent one is never resent."""
    with transaction.atomic():
        email = CustomerEmail.objects.select_for_update().filter(pk=email_id).first()
        if email is None or email.state not in (EmailState.FAILED, EmailState.PENDING):
            return False
        now = timezone.now()
        CustomerEmail.objects.filter(pk=email_id).update(
            state=EmailState.PENDING, next_attempt_at=now, kicked_at=None, updated_at=now
        )
        audit_record(
            actor=actor, action="customer_email.retry", target=email, details={"kind": email.kind, "tries": email.tries}
        )
    customer_emails_kick_due()
    return True


__all__ = ["EmailKind", "customer_email_retry", "customer_email_send", "customer_emails_dispatch"]
