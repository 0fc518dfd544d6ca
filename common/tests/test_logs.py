"""Structured logs: request id in and out, JSON lines, masking, outbox metadata, audit log."""

import io
import json
import logging

import pytest
import structlog
from django.conf import settings

from common.audit import audit_record
from common.logs import logging_config, mask_sensitive, mask_text
from common.models import AuditLogEntry
from common.tests.factories import ProductFactory, StaffFactory, UserFactory
from common.tests.helpers import ADDRESS
from orders.services import cart_add_item, cart_get_or_create
from outbox.models import OutboxEvent


@pytest.fixture
def json_log_lines():
    """The JSON lines the configured (production) formatter writes, as dicts."""
    spec = dict(logging_config(log_format="json", level="INFO")["formatters"]["structlog"])
    factory = spec.pop("()")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(factory(**spec))
    root = logging.getLogger()
    root.addHandler(handler)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    yield lines
    root.removeHandler(handler)


def test_settings_use_json_logs_when_debug_is_false():
    assert settings.DEBUG is False
    assert settings.LOG_FORMAT == "json"
    assert logging_config(log_format="console", level="INFO")["formatters"]["structlog"]["()"]


def test_request_id_is_taken_echoed_and_logged(db, client, json_log_lines):
    response = client.get("/api/v1/products/", HTTP_X_REQUEST_ID="req-abc-123")
    assert response.status_code == 200
    assert response["X-Request-ID"] == "req-abc-123"
    finished = [line for line in json_log_lines() if line.get("event") == "request_finished"]
    assert finished, json_log_lines()
    assert finished[-1]["request_id"] == "req-abc-123"
    assert finished[-1]["code"] == 200
    assert finished[-1]["level"] == "info"
    assert "timestamp" in finished[-1]


def test_a_request_id_is_made_when_missing_or_unsafe(db, client):
    made = client.get("/health/live/")["X-Request-ID"]
    assert len(made) == 32
    unsafe = client.get("/health/live/", HTTP_X_REQUEST_ID="bad id\nforged log line")["X-Request-ID"]
    assert unsafe != "bad id\nforged log line"
    assert len(unsafe) == 32
    assert client.get("/health/live/", HTTP_X_REQUEST_ID="x" * 200)["X-Request-ID"] != "x" * 200


def test_outbox_events_carry_the_request_id(db, client_for):
    user = UserFactory()
    cart_add_item(cart=cart_get_or_create(user=user), sku=ProductFactory(on_hand=5).sku, quantity=1)
    response = client_for(user).post(
        "/api/v1/checkout/",
        {"shipping_address": ADDRESS},
        format="json",
        HTTP_IDEMPOTENCY_KEY="log-1",
        HTTP_X_REQUEST_ID="req-checkout-42",
    )
    assert response.status_code == 201
    events = OutboxEvent.objects.filter(aggregate_id=str(response.json()["id"]), aggregate_type="orders.order")
    assert events.exists()
    assert {e.metadata["request_id"] for e in events} == {"req-checkout-42"}


def test_passwords_tokens_and_emails_never_reach_the_log(db, client, json_log_lines):
    user = UserFactory(username="alice", email="alice.liddell@example.com")
    response = client.post(
        "/api/v1/auth/token/",
        {"username": "alice", "password": "pass-word-123"},
        content_type="application/json",
    )
    token = response.json()["token"]
    logging.getLogger("shop.test").warning(
        "user %s signed in with Authorization: Token %s, password=pass-word-123", user.email, token
    )
    structlog.get_logger("shop.test").info("login", email=user.email, password="pass-word-123", token=token)
    text = json.dumps(json_log_lines())
    assert "pass-word-123" not in text
    assert token not in text
    assert "alice.liddell@example.com" not in text
    assert "a***@example.com" in text


def test_mask_sensitive_processor():
    event = mask_sensitive(
        None,
        "info",
        {
            "event": "paid by bob@example.org with whsec_c2VjcmV0 and Bearer abcdef123456",
            "password": "hunter2",
            "headers": {"Authorization": "Token 123456789abc", "Accept": "json"},
            "webhook_secret": "whsec_xyz",
            "sessionid": "s3ss10n",
            "request_id": "keep-me",
            "items": ["carol@example.com", 3],
        },
    )
    assert event["event"] == "paid by b***@example.org with whsec_*** and Bearer ***"
    assert event["password"] == "***"
    assert event["headers"] == {"Authorization": "***", "Accept": "json"}
    assert event["webhook_secret"] == "***"
    assert event["sessionid"] == "***"
    assert event["request_id"] == "keep-me"
    assert event["items"] == ["c***@example.com", 3]
    assert mask_text("secret=abc123; api_key: 'k'") == "secret=***; api_key: ***"


def test_audit_record_keeps_who_what_when_and_the_request_id(db):
    staff = StaffFactory()
    product = ProductFactory()
    structlog.contextvars.bind_contextvars(request_id="req-audit-1")
    try:
        entry = audit_record(actor=staff, action="stock.edit", target=product, details={"on_hand": [10, 12]})
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    entry.refresh_from_db()
    assert entry.actor == staff
    assert entry.actor_username == staff.username
    assert entry.action == "stock.edit"
    assert (entry.target_type, entry.target_id) == ("inventory.product", str(product.pk))
    assert entry.details == {"on_hand": [10, 12]}
    assert entry.request_id == "req-audit-1"
    assert entry.created_at is not None


def test_audit_log_is_read_only_in_the_admin(db, client):
    admin = StaffFactory(is_superuser=True)
    entry = audit_record(actor=admin, action="invoice.void", target=None, details={})
    client.force_login(admin)
    assert client.get("/admin/common/auditlogentry/").status_code == 200
    page = client.get(f"/admin/common/auditlogentry/{entry.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.post(f"/admin/common/auditlogentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditLogEntry.objects.filter(pk=entry.pk).exists()


def _record(name: str, msg: object, args: object = None, level: int = logging.INFO) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, msg, None, None)
    record.args = args  # type: ignore[assignment]
    return record


def test_routine_beat_work_is_demoted_to_debug_and_real_work_keeps_its_level(settings):
    from common.logs import QuietPeriodicFilter

    quiet = QuietPeriodicFilter()
    relay = {"id": "t1", "name": "outbox.relay", "return_value": "0"}
    trigger = {"id": "t3", "name": "invoicing.assign_invoice_number", "return_value": "0"}
    dropped = [
        _record("celery.beat", "Scheduler: Sending due task %s (%s)", ("outbox-relay", "outbox.relay")),
        _record("celery.worker.strategy", "Task %(name)s[%(id)s] received", relay),
        _record("celery.app.trace", "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s", relay),
        _record("django_structlog.celery.receivers", {"event": "task_started", "task_id": "t1"}),
        # a numbering trigger an earlier batch had answered
        _record("celery.worker.strategy", "Task %(name)s[%(id)s] received", trigger),
        _record("celery.app.trace", "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s", trigger),
    ]
    kept = [
        # a periodic run that did work
        _record("celery.app.trace", "Task %(name)s[%(id)s] succeeded", {**relay, "return_value": "3"}),
        # a task that is not on the beat schedule
        _record("celery.worker.strategy", "Task %(name)s[%(id)s] received", {"id": "t2", "name": "payments.x"}),
        # a request's task: its request_id is how one follows the request into the worker
        _record("django_structlog.celery.receivers", {"event": "task_started", "request_id": "req-1"}),
        # a trigger that numbered a batch
        _record("celery.app.trace", "Task %(name)s[%(id)s] succeeded", {**trigger, "return_value": "12"}),
        # never demote a warning
        _record("celery.beat", "Scheduler: Sending due task %s (%s)", ("a", "outbox.relay"), logging.WARNING),
    ]
    logging.getLogger().setLevel(logging.INFO)
    assert [quiet.filter(r) for r in dropped] == [False] * 6
    assert all(r.levelno == logging.DEBUG for r in dropped)
    assert [quiet.filter(r) for r in kept] == [True] * 5
    assert [r.levelno for r in kept] == [logging.INFO] * 4 + [logging.WARNING]


def test_one_log_line_per_request_with_its_user_agent(db, client, json_log_lines):
    client.get("/api/v1/products/", HTTP_X_REQUEST_ID="req-one-line", HTTP_USER_AGENT="bench/1.0")
    mine = [line for line in json_log_lines() if line.get("request_id") == "req-one-line"]
    assert [line["event"] for line in mine] == ["request_finished"]
    assert mine[0]["request"] == "GET /api/v1/products/"
    assert mine[0]["user_agent"] == "bench/1.0"
    assert mine[0]["ip"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("proxies", "forwarded", "logged"),
    [
        (0, "203.0.113.9", "127.0.0.1"),  # no trusted proxy: the header is the client's word only
        (1, "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # what the one proxy (nginx) saw
    ],
)
def test_the_logged_ip_is_the_one_the_throttles_key_on(
    db, client, json_log_lines, settings, proxies, forwarded, logged
):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": proxies}
    client.get("/api/v1/products/", HTTP_X_REQUEST_ID="req-ip", HTTP_X_FORWARDED_FOR=forwarded)
    (line,) = [line for line in json_log_lines() if line.get("request_id") == "req-ip"]
    assert line["ip"] == logged


def test_mask_text_leaves_plain_text_alone_and_masks_the_rest():
    plain = "order 42 paid; invoice INV-7 issued"
    assert mask_text(plain) is plain
    assert mask_text("mail ada@example.com") == "mail a***@example.com"
    assert mask_text("Authorization: Bearer abcdef123456") == "Authorization: Bearer ***"
    assert mask_text("secret=whsec_abc") == "secret=***"
