"""The audit log of staff actions: who did what to which object, when.

Call `audit_record` from every staff action that matters (invoice void, retry-now, draft
finalize, stock edits, refund flags), in the same transaction as the change when there is
one, so the entry commits with it:

    from common.audit import audit_record

    with transaction.atomic():
        invoice = invoice_void(invoice_id=..., reason=...)
        audit_record(actor=request.user, action="invoice.void", target=invoice, details={"reason": reason})

`action` is "<entity>.<verb>" (e.g. "invoice.retry_now", "stock.edit", "order.refund_flag");
`details` is JSON (old/new values, reasons) and must not carry secrets. The request id of
the current request or task is stored with the entry. Entries are read-only in the admin.
"""

import json
from typing import Any

import structlog
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from common.models import AuditLogEntry

logger = structlog.get_logger(__name__)


def audit_record(
    *, actor: Any, action: str, target: models.Model | None, details: dict[str, Any] | None = None
) -> AuditLogEntry:
    """Record one staff action. `actor` is the user (None or anonymous for the system)."""
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    context = structlog.contextvars.get_contextvars()
    entry = AuditLogEntry.objects.create(
        actor=user,
        actor_username=user.get_username() if user is not None else "system",
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:200] if target is not None else "",
        details=json.loads(json.dumps(details or {}, cls=DjangoJSONEncoder)),
        request_id=str(context.get("request_id", ""))[:64],
    )
    logger.info(
        "audit", action=action, target_type=entry.target_type, target_id=entry.target_id, actor_id=entry.actor_id
    )
    return entry
