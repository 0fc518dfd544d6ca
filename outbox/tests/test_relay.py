"""The transactional outbox: events commit with their state change; the relay publishes
them to a Redis Stream in id order, at least once, never twice in one pass."""

import json
import time

import pytest
import redis
from django.conf import settings
from django.db import transaction

from common.tests.factories import ProductFactory
from common.tests.helpers import broker_purge, queued_tasks, run_in_threads
from outbox.models import OutboxEvent
from outbox.services import OutboxOutsideTransaction, RedisStreamPublisher, outbox_record, outbox_relay
from outbox.tasks import relay

pytestmark = pytest.mark.django_db


@pytest.fixture
def stream():
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    client.delete(settings.OUTBOX_STREAM)
    yield client
    client.delete(settings.OUTBOX_STREAM)


def _published(stream) -> list[dict[str, str]]:
    return [fields for _, fields in stream.xrange(settings.OUTBOX_STREAM)]


def _record(n: int, aggregate=None, prefix: str = "thing.happened") -> list[OutboxEvent]:
    aggregate = aggregate or ProductFactory()
    with transaction.atomic():
        return [outbox_record(event_type=f"{prefix}.{i}", aggregate=aggregate, payload={"i": i}) for i in range(n)]


def test_relay_publishes_in_id_order_with_the_event_id_and_marks_rows(stream):
    events = _record(5)

    published = outbox_relay()

    assert published == 5
    messages = _published(stream)
    assert [m["event_id"] for m in messages] == [str(e.id) for e in sorted(events, key=lambda e: e.id)]
    first = messages[0]
    event = OutboxEvent.objects.get(pk=first["event_id"])
    assert (first["event_type"], first["aggregate_type"], first["aggregate_id"]) == (
        event.event_type, "inventory.product", event.aggregate_id,
    )  # fmt: skip
    assert json.loads(first["payload"]) == event.payload
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def test_id_order_is_the_order_events_were_recorded(stream):
    # Many events inside one millisecond: consumers see them in the order they happened.
    events = _record(200)

    outbox_relay()

    assert [m["event_type"] for m in _published(stream)] == [e.event_type for e in events]
    assert list(OutboxEvent.objects.order_by("id").values_list("event_type", flat=True)) == [
        e.event_type for e in events
    ]


def test_a_second_relay_publishes_nothing_new(stream):
    _record(3)
    outbox_relay()
    first_marks = dict(OutboxEvent.objects.values_list("id", "published_at"))

    again = outbox_relay()

    assert again == 0
    assert len(_published(stream)) == 3
    assert dict(OutboxEvent.objects.values_list("id", "published_at")) == first_marks


def test_relay_works_through_batches(stream, settings):
    settings.OUTBOX_RELAY_BATCH = 4
    events = _record(10)

    published = outbox_relay()

    assert published == 10
    assert [m["event_id"] for m in _published(stream)] == [str(e.id) for e in sorted(events, key=lambda e: e.id)]


def test_a_publish_failure_leaves_the_batch_unpublished_for_the_next_run(stream):
    events = _record(4)

    class FailsOnThird(RedisStreamPublisher):
        calls = 0

        def publish(self, event):
            self.calls += 1
            if self.calls == 3:
                raise ConnectionError("stream went away")
            super().publish(event)

    with pytest.raises(ConnectionError):
        outbox_relay(publisher=FailsOnThird(settings.REDIS_URL, settings.OUTBOX_STREAM))
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 4

    assert outbox_relay() == 4
    ids = [m["event_id"] for m in _published(stream)]
    # At least once: the two sent before the failure are sent again; consumers dedupe on id.
    assert sorted(set(ids)) == sorted(str(e.id) for e in events)
    assert len(ids) == 6


def test_an_event_rolls_back_with_its_state_change():
    product = ProductFactory()

    def change_then_fail() -> None:
        with transaction.atomic():
            product.name = "renamed"
            product.save()
            outbox_record(event_type="product.renamed", aggregate=product)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        change_then_fail()

    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_recording_outside_a_transaction_raises_and_writes_nothing():
    product = ProductFactory()

    with pytest.raises(OutboxOutsideTransaction):
        outbox_record(event_type="product.touched", aggregate=product)

    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_relays_never_publish_an_event_twice(stream, settings):
    settings.OUTBOX_RELAY_BATCH = 7
    product = ProductFactory()
    with transaction.atomic():
        for i in range(300):
            outbox_record(event_type="tick", aggregate=product, payload={"i": i})

    class SlowPublisher(RedisStreamPublisher):
        def publish(self, event):  # widen the window in which relays overlap
            time.sleep(0.001)
            super().publish(event)

    def run_relay(_: int) -> int:
        return outbox_relay(publisher=SlowPublisher(settings.REDIS_URL, settings.OUTBOX_STREAM))

    counts = run_in_threads(run_relay, 4)

    assert all(isinstance(c, int) for c in counts), counts
    assert sum(counts) == 300
    assert sum(1 for c in counts if c > 0) >= 2  # they really ran side by side
    ids = [m["event_id"] for m in _published(stream)]
    assert len(ids) == len(set(ids)) == 300
    assert set(ids) == {str(pk) for pk in OutboxEvent.objects.values_list("id", flat=True)}
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_a_commit_kicks_the_relay_task_once_per_second(stream):
    broker_purge()
    product = ProductFactory()

    for _ in range(3):
        with transaction.atomic():
            outbox_record(event_type="product.touched", aggregate=product)

    assert queued_tasks(name=relay.name) == [(relay.name, [])]
    broker_purge()


def test_a_process_asks_redis_to_kick_the_relay_at_most_once_a_second(monkeypatch):
    from outbox import services

    clock = [1000.0]
    asked: list[str] = []
    monkeypatch.setattr(services.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(services.cache, "add", lambda key, *args, **kwargs: asked.append(key) or False)

    for _ in range(5):
        services._kick_relay()
    clock[0] += 0.9
    services._kick_relay()
    assert asked == ["outbox:relay-kicked"]

    clock[0] += 0.2  # a second after the first ask: the key it set has expired
    services._kick_relay()
    assert asked == ["outbox:relay-kicked"] * 2
