"""What operators see and what keeps mail moving: the health backlog, the gauges, lost kicks
re-kicked after the lease (never before), and the dispatcher kicked after a relay."""

from datetime import timedelta

import pytest
from django.utils import timezone

from common.tests.factories import StaffFactory
from common.tests.helpers import place_order
from notifications import tasks
from notifications.models import CustomerEmail, EmailState
from notifications.services import customer_emails_dispatch, customer_emails_kick_due

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]


@pytest.fixture
def kicks(monkeypatch) -> list[int]:
    sent: list[int] = []
    monkeypatch.setattr(tasks.send_email, "delay", lambda email_id: sent.append(email_id))
    return sent


def test_a_kick_is_repeated_only_after_the_lease(kicks, settings, django_capture_on_commit_callbacks):
    place_order()
    with django_capture_on_commit_callbacks(execute=True):
        customer_emails_dispatch()
    email = CustomerEmail.objects.get()
    assert kicks == [email.pk]

    with django_capture_on_commit_callbacks(execute=True):
        assert customer_emails_kick_due() == []  # kicked moments ago: its message may be queued
    CustomerEmail.objects.filter(pk=email.pk).update(
        kicked_at=timezone.now() - timedelta(seconds=settings.EMAIL_KICK_LEASE_S + 1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert customer_emails_kick_due() == [email.pk]  # the message was lost: kicked again
    assert kicks == [email.pk, email.pk]


def test_a_mail_waiting_for_its_backoff_is_not_kicked(kicks, django_capture_on_commit_callbacks):
    place_order()
    customer_emails_dispatch()
    CustomerEmail.objects.update(kicked_at=None, tries=1, next_attempt_at=timezone.now() + timedelta(minutes=5))

    with django_capture_on_commit_callbacks(execute=True):
        assert customer_emails_kick_due() == []
    assert kicks == []


def test_a_relay_that_published_kicks_the_dispatcher_once_a_second(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(tasks.dispatch, "delay", lambda: calls.append(1))

    class Relay:
        name = "outbox.relay"

    tasks.after_relay(sender=Relay(), result=3)
    tasks.after_relay(sender=Relay(), result=3)  # within the second: no second kick
    tasks.after_relay(sender=Relay(), result=0)  # published nothing
    tasks.after_relay(sender=tasks.dispatch, result=5)  # another task

    assert calls == [1]


def test_health_warns_on_a_failed_mail_and_metrics_count_them(client, settings):
    settings.METRICS_TOKEN = "metrics-test-token"
    place_order()
    customer_emails_dispatch()
    quiet = client.get("/health/").json()["backlogs"]["customer_emails"]
    CustomerEmail.objects.update(state=EmailState.FAILED, tries=12, last_error="SMTPRecipientsRefused: 550")

    body = client.get("/health/").json()
    metrics = client.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-test-token").content.decode()

    assert (quiet["status"], quiet["pending"]) == ("ok", 1)
    assert "customer_emails" in body["warnings"]
    backlog = body["backlogs"]["customer_emails"]
    assert (backlog["status"], backlog["failed"], backlog["pending"]) == ("warning", 1, 0)
    assert backlog["last_error"] == "SMTPRecipientsRefused: 550"
    assert "customer_emails_failed 1.0" in metrics
    assert "customer_emails_pending 0.0" in metrics


def test_health_warns_when_due_mails_are_not_sent(client):
    place_order()
    customer_emails_dispatch()
    CustomerEmail.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=10))

    backlog = client.get("/health/").json()["backlogs"]["customer_emails"]

    assert backlog["status"] == "warning"
    assert backlog["oldest_due_s"] >= 600


def test_staff_admin_changelist_stays_at_a_fixed_query_count(client, django_assert_max_num_queries):
    for _ in range(5):
        place_order()
    customer_emails_dispatch()
    client.force_login(StaffFactory(is_superuser=True))

    with django_assert_max_num_queries(12):
        assert client.get("/admin/notifications/customeremail/").status_code == 200


def test_a_failed_send_is_kicked_again_when_its_backoff_ends_not_after_the_lease(
    smtp, kicks, settings, django_capture_on_commit_callbacks
):
    from notifications.services import customer_email_send

    settings.EMAIL_KICK_LEASE_S = 3600
    smtp.refuse = True
    place_order()
    with django_capture_on_commit_callbacks(execute=True):
        customer_emails_dispatch()
    email = CustomerEmail.objects.get()
    assert customer_email_send(email_id=email.pk) == EmailState.PENDING
    CustomerEmail.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now())  # the backoff is over

    with django_capture_on_commit_callbacks(execute=True):
        assert customer_emails_kick_due() == [email.pk]
    assert kicks == [email.pk, email.pk]


def test_every_notifications_task_runs_on_the_documents_queue():
    from config.celery import app

    for name in ("notifications.dispatch", "notifications.send_email"):
        assert app.amqp.router.route({}, name)["queue"].name == "documents", name
    assert app.amqp.router.route({}, "outbox.relay")["queue"].name == "celery"
