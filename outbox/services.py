"""Transactional outbox: record events inside the state change's transaction; a relay
publishes them afterwards (at least once; consumers dedupe on the event id)."""

import json
import logging
import time
from typing import Any, Protocol

import structlog
from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone

from common.commit import on_commit_robust
from common.db import instance_insert
from outbox.models import OutboxEvent

logger = logging.getLogger(__name__)

_KICK_KEY = "outbox:relay-kicked"


class OutboxOutsideTransaction(RuntimeError):
    pass


def outbox_record(
    *, event_type: str, aggregate: models.Model, payload: dict[str, Any] | None = None, kick: bool = True
) -> OutboxEvent:
    """Write an event in the caller's transaction. Outside one it refuses: an event that
    could commit without its state change (or the reverse) breaks the outbox contract.
    `kick=False`: the caller kicks the relay once for many events (outbox_kick_on_commit)."""
    if not connection.in_atomic_block:
        raise OutboxOutsideTransaction("outbox_record must run inside transaction.atomic()")
    event = instance_insert(
        OutboxEvent(
            aggregate_type=aggregate._meta.label_lower,
            aggregate_id=str(aggregate.pk),
            event_type=event_type,
            payload=json.loads(json.dumps(payload or {}, cls=DjangoJSONEncoder)),
            metadata=outbox_metadata(),
        )
    )
    if kick:
        outbox_kick_on_commit()
    return event


def outbox_record_many(
    *, events: list[tuple[str, models.Model, dict[str, Any] | None]], kick: bool = True
) -> list[OutboxEvent]:
    """outbox_record for many events at once, (event_type, aggregate, payload) each: one
    INSERT, ids in list order (uuid7 increases), one relay kick unless `kick=False`."""
    if not connection.in_atomic_block:
        raise OutboxOutsideTransaction("outbox_record_many must run inside transaction.atomic()")
    metadata = outbox_metadata()
    rows = OutboxEvent.objects.bulk_create(
        OutboxEvent(
            aggregate_type=aggregate._meta.label_lower,
            aggregate_id=str(aggregate.pk),
            event_type=event_type,
            payload=json.loads(json.dumps(payload or {}, cls=DjangoJSONEncoder)),
            metadata=dict(metadata),
        )
        for event_type, aggregate, payload in events
    )
    if kick and rows:
        outbox_kick_on_commit()
    return rows


def outbox_kick_on_commit() -> None:
    """Kick the relay once the current transaction commits (it drains every unpublished row;
    beat runs it every few seconds anyway, so a lost kick only delays publishing)."""
    on_commit_robust(hook="outbox.relay", fn=_kick_relay)


def outbox_metadata() -> dict[str, Any]:
    """The request id (and task id) bound in the structlog context by django-structlog:
    set by the web request, and carried by Celery into the tasks it enqueued."""
    context = structlog.contextvars.get_contextvars()
    return {key: str(context[key]) for key in ("request_id", "task_id") if context.get(key)}


class _KickGate:
    """When this process last tried to kick the relay (time.monotonic()). Within the second
    after, the Redis key below is set anyway (by this kick or another process's), so asking
    again would cost a round trip to be told no: a transaction's three events ask once, and
    a busy web process about once a second instead of once per event."""

    last = float("-inf")


def outbox_kick_gate_reset() -> None:
    """Forget the last kick (the tests' fresh cache: the key it stood for is gone)."""
    _KickGate.last = float("-inf")


def _kick_relay() -> None:
    # One relay run per second is plenty: it drains everything unpublished; beat covers the rest.
    now = time.monotonic()
    if now - _KickGate.last < 1:
        return
    _KickGate.last = now
    if cache.add(_KICK_KEY, 1, timeout=1):
        from outbox.tasks import relay

        relay.delay()


class Publisher(Protocol):
    def publish(self, event: OutboxEvent) -> None: ...


class RedisStreamPublisher:
    def __init__(self, url: str, stream: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.stream = stream

    def publish(self, event: OutboxEvent) -> None:
        self.client.xadd(
            self.stream,
            {
                "event_id": str(event.id),
                "event_type": event.event_type,
                "aggregate_type": event.aggregate_type,
                "aggregate_id": event.aggregate_id,
                "created_at": event.created_at.isoformat(),
                "payload": json.dumps(event.payload),
                "metadata": json.dumps(event.metadata),
            },
        )


class LogPublisher:
    """Embedded mode (no Redis): the rows stay the audit trail; publishing is a log line."""

    def publish(self, event: OutboxEvent) -> None:
        logger.info("outbox event %s %s %s", event.id, event.event_type, event.payload)


def outbox_publisher() -> Publisher:
    if settings.REDIS_URL:
        return RedisStreamPublisher(settings.REDIS_URL, settings.OUTBOX_STREAM)
    return LogPublisher()


def outbox_relay(*, publisher: Publisher | None = None, batch_size: int | None = None) -> int:
    """Publish unpublished events in id order; returns how many were published.

    Rows are claimed with SKIP LOCKED so concurrent relays never publish the same batch;
    a crash after XADD and before commit republishes (at least once)."""
    publisher = publisher or outbox_publisher()
    batch_size = batch_size or settings.OUTBOX_RELAY_BATCH
    published = 0
    while True:
        with transaction.atomic():
            events = list(
                OutboxEvent.objects.select_for_update(skip_locked=True)
                .filter(published_at__isnull=True)
                .order_by("id")[:batch_size]
            )
            if not events:
                return published
            for event in events:
                publisher.publish(event)
            OutboxEvent.objects.filter(pk__in=[e.pk for e in events]).update(published_at=timezone.now())
            published += len(events)
