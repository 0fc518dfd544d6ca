"""Celery wiring for operations (imported by config/celery.py): logging through Django's
LOGGING, task-outcome metrics, the worker heartbeat that `/health/` reads, and the
multiprocess metrics directory. Signals here only observe; no business logic."""

from typing import Any

from celery import Task
from celery.signals import (
    setup_logging,
    task_failure,
    task_retry,
    task_success,
    worker_init,
    worker_process_init,
    worker_ready,
)
from celery.signals import worker_shutdown as worker_shutdown_signal


@setup_logging.connect(weak=False)
def _setup_logging(**kwargs: Any) -> None:
    # Connecting this signal stops Celery from configuring logging itself: Django's LOGGING
    # (structlog JSON or console, with masking) renders the worker's and the tasks' lines.
    from django.conf import settings

    from common.logs import logging_apply

    logging_apply(settings.LOGGING)


def _task_name(sender: Any) -> str:
    return str(getattr(sender, "name", None) or sender or "unknown")


@task_success.connect(weak=False)
def _task_success(sender: Task | None = None, **kwargs: Any) -> None:
    from common.metrics import metrics_celery_task

    metrics_celery_task(task=_task_name(sender), outcome="success")


@task_failure.connect(weak=False)
def _task_failure(sender: Task | None = None, **kwargs: Any) -> None:
    from common.metrics import metrics_celery_task

    metrics_celery_task(task=_task_name(sender), outcome="failure")


@task_retry.connect(weak=False)
def _task_retry(sender: Task | None = None, **kwargs: Any) -> None:
    from common.metrics import metrics_celery_task

    metrics_celery_task(task=_task_name(sender), outcome="retry")


@worker_init.connect(weak=False)
def _worker_init(**kwargs: Any) -> None:
    from django.conf import settings

    if settings.PROMETHEUS_MULTIPROC_DIR:
        from common.metrics import metrics_multiproc_cleanup

        metrics_multiproc_cleanup(path=settings.PROMETHEUS_MULTIPROC_DIR)


@worker_process_init.connect(weak=False)
def _worker_process_init(**kwargs: Any) -> None:
    # A prefork pool child runs the tasks: the app it inherited stays out of full collections.
    from common.runtime import process_heap_freeze

    process_heap_freeze()


@worker_ready.connect(weak=False)
def _worker_ready(sender: Any = None, **kwargs: Any) -> None:
    from common.health import worker_heartbeat_start
    from common.runtime import process_heap_freeze

    process_heap_freeze()  # the solo pool runs tasks in this process

    worker_heartbeat_start(hostname=str(getattr(sender, "hostname", "") or "worker"))


@worker_shutdown_signal.connect(weak=False)
def _worker_shutdown(**kwargs: Any) -> None:
    from common.health import worker_heartbeat_stop

    worker_heartbeat_stop()
