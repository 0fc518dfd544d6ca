"""common.runtime: the app a server process loaded is frozen out of the collector's full
collections, in gunicorn workers and in Celery's task-running processes."""

import gc

import pytest
from celery.signals import worker_process_init, worker_ready

import config.gunicorn
from common.runtime import process_heap_freeze


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the suite runs with the collector as usual


def test_freezing_moves_the_live_heap_out_of_collections(unfrozen):
    frozen = process_heap_freeze()
    assert frozen == gc.get_freeze_count() > 10_000  # the imported app, not a handful
    gc.collect()
    assert gc.get_freeze_count() == frozen  # a full collection leaves them where they are


def test_gunicorn_freezes_each_worker_after_loading_the_app(unfrozen):
    assert gc.get_freeze_count() == 0
    config.gunicorn.post_worker_init(worker=None)
    assert gc.get_freeze_count() > 10_000


@pytest.mark.parametrize("signal", [worker_process_init, worker_ready], ids=["prefork child", "solo worker"])
def test_celery_processes_that_run_tasks_freeze(unfrozen, signal, monkeypatch):
    monkeypatch.setattr("common.health.worker_heartbeat_start", lambda **kwargs: None)
    assert gc.get_freeze_count() == 0
    signal.send(sender=None)
    assert gc.get_freeze_count() > 10_000
