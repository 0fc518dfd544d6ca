"""Celery application. Settings come from Django settings under the CELERY_ namespace."""

import os
from typing import Any
from urllib.parse import urlsplit

import celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")


class Task(celery.Task):
    """Celery's task, publishing without declaring its queue on a Redis broker.

    Celery asks kombu to declare the target queue on every publish; kombu then clones the
    queue (and its exchange) to bind it to the channel before it finds the declaration in
    its cache: 8 % of a publish's CPU in one process, a fifth under load (py-spy), on the
    request path (pay, the webhook). On Redis a task message goes to the default exchange,
    which routes by queue name straight to the queue's list, and the workers declare the
    queues they consume: the declaration adds nothing there. Other brokers (AMQP drops a
    message for a queue nobody declared yet) keep Celery's behaviour."""

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:  # type: ignore[override]
        if broker_routes_by_queue_name(self.app):
            options.setdefault("declare", [])
        return super().apply_async(args, kwargs, **options)


def broker_routes_by_queue_name(app: celery.Celery) -> bool:
    scheme = urlsplit(str(app.conf.broker_url or "")).scheme
    return scheme in ("redis", "rediss")


app = celery.Celery("commerce", task_cls=Task)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Operations: structured logs with the request id of the request that enqueued the task
# (django-structlog), task-outcome metrics, the worker heartbeat read by /health/.
from django_structlog.celery.steps import DjangoStructLogInitStep  # noqa: E402

import common.celery_hooks  # noqa: E402, F401  (connects the signal receivers)

app.steps["worker"].add(DjangoStructLogInitStep)
