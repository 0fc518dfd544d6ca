"""config.celery.Task: on a Redis broker a task is published straight to its queue's list,
without the per-publish queue declaration Celery asks for; the worker still gets it."""

import uuid

import celery
import pytest
import redis
from django.conf import settings

from common.tasks import purge_idempotency_keys
from config.celery import broker_routes_by_queue_name


@pytest.fixture
def queue():
    name = f"test-publish-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    yield name, client
    client.delete(name, f"_kombu.binding.{name}")


def test_a_task_reaches_its_queue_on_redis_without_a_declaration(queue):
    name, client = queue
    purge_idempotency_keys.apply_async(queue=name)
    purge_idempotency_keys.apply_async(queue=name)
    assert client.llen(name) == 2  # both messages are in the queue's list
    assert not client.exists(f"_kombu.binding.{name}")  # and nothing was declared for them


def test_an_explicit_declaration_is_still_honoured(queue):
    name, client = queue
    purge_idempotency_keys.apply_async(queue=name, declare=None)  # Celery's default: declare the target
    assert client.llen(name) == 1
    assert client.exists(f"_kombu.binding.{name}")


@pytest.mark.parametrize(
    ("url", "skips"),
    [
        ("redis://127.0.0.1:6379/0", True),
        ("rediss://cache.internal:6380/0", True),
        ("amqp://guest@127.0.0.1:5672//", False),  # AMQP drops a message for an undeclared queue
        ("filesystem://", False),
    ],
)
def test_only_redis_brokers_skip_the_declaration(url, skips):
    assert broker_routes_by_queue_name(celery.Celery(broker=url)) is skips
