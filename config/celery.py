"""Celery application. Settings come from Django settings under the CELERY_ namespace."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("commerce")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Operations: structured logs with the request id of the request that enqueued the task
# (django-structlog), task-outcome metrics, the worker heartbeat read by /health/.
from django_structlog.celery.steps import DjangoStructLogInitStep  # noqa: E402

import common.celery_hooks  # noqa: E402, F401  (connects the signal receivers)

app.steps["worker"].add(DjangoStructLogInitStep)
