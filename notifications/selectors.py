"""Reads of the customer e-mails: the backlog for /health/ and /metrics."""

from dataclasses import dataclass

from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from notifications.models import CustomerEmail, EmailState

# /health/ warns ("customer_emails") when a mail was given up, failed this often, or is this late.
WARN_TRIES = 3
WARN_LATE_S = 300.0


@dataclass(frozen=True)
class EmailBacklog:
    pending: int
    retrying: int  # pending after at least one failed try
    failed: int
    oldest_due_s: float  # how late the most overdue pending mail is (0: none is due)
    worst_tries: int
    last_error: str


def customer_emails_backlog() -> EmailBacklog:
    now = timezone.now()
    row = CustomerEmail.objects.filter(state__in=[EmailState.PENDING, EmailState.FAILED]).aggregate(
        pending=Count("id", filter=Q(state=EmailState.PENDING)),
        retrying=Count("id", filter=Q(state=EmailState.PENDING, tries__gt=0)),
        failed=Count("id", filter=Q(state=EmailState.FAILED)),
        oldest_due=Min("next_attempt_at", filter=Q(state=EmailState.PENDING)),
        worst_tries=Max("tries", filter=Q(state=EmailState.PENDING)),
    )
    last_error = (
        CustomerEmail.objects.filter(state__in=[EmailState.PENDING, EmailState.FAILED])
        .exclude(last_error="")
        .order_by("-last_attempt_at")
        .values_list("last_error", flat=True)
        .first()
    )
    oldest = row["oldest_due"]
    return EmailBacklog(
        pending=row["pending"],
        retrying=row["retrying"],
        failed=row["failed"],
        oldest_due_s=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
        worst_tries=row["worst_tries"] or 0,
        last_error=(last_error or "")[:300],
    )


def customer_emails_health() -> dict[str, object]:
    """/health/ "backlogs" entry: a warning, never a 503 (the shop sells without mail)."""
    backlog = customer_emails_backlog()
    warning = backlog.failed > 0 or backlog.worst_tries >= WARN_TRIES or backlog.oldest_due_s >= WARN_LATE_S
    return {
        "status": "warning" if warning else "ok",
        "pending": backlog.pending,
        "retrying": backlog.retrying,
        "failed": backlog.failed,
        "oldest_due_s": round(backlog.oldest_due_s, 1),
        "max_tries": backlog.worst_tries,
        "last_error": backlog.last_error,
    }
