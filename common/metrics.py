"""Prometheus metrics: the series, the scrape-time domain gauges and the `/metrics` view.

Counters and histograms are incremented where things happen (HTTP middleware, invoicing
and payments services, Celery signals). Gauges that describe the database (invoices
pending, reservations active, outbox backlog) are computed at scrape time, so every web
process reports the same truth and nothing has to be kept in sync.

Multiprocess mode: gunicorn runs several processes and the numbering happens in Celery
worker processes. When `PROMETHEUS_MULTIPROC_DIR` is set (it must be in the environment
before the process starts: prometheus-client reads it at import), every process writes its
values to files in that directory, and `/metrics` adds up the files of that directory and
of its sibling directories. Give each service its own directory under one shared root:
`var/metrics/web`, `var/metrics/worker` (`make run`), `/app/var/metrics/<service>-<host>`
(docker compose, one shared volume). Without the variable (tests, `manage.py runserver`)
the process's own default registry is served.
"""

import hmac
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_TIME_TO_NUMBER_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 14400)

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests by route pattern, method and status.", ["route", "method", "status"]
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route pattern, method and status.",
    ["route", "method", "status"],
    buckets=_LATENCY_BUCKETS,
)
INVOICE_NUMBERING_ATTEMPTS = Counter(
    "invoice_numbering_attempts_total",
    "Invoice numbering attempts by outcome: issued, failed (rolled back, retried) or noop (already numbered).",
    ["outcome"],
)
INVOICE_SIMULATED_FAILURES = Counter(
    "invoice_numbering_simulated_failures_total",
    "Numbering attempts failed by the simulated fault (INVOICE_FAILURE_RATE).",
    ["series"],
)
INVOICE_TIME_TO_NUMBER = Histogram(
    "invoice_time_to_number_seconds",
    "Time from the order being placed (its invoice created) to the invoice number being issued.",
    ["series"],
    buckets=_TIME_TO_NUMBER_BUCKETS,
)
WEBHOOKS_RECEIVED = Counter("payment_webhooks_received_total", "Payment webhooks received, by event type.", ["type"])
WEBHOOKS_REJECTED = Counter(
    "payment_webhooks_rejected_total", "Payment webhooks refused (bad signature, stale timestamp...).", ["reason"]
)
WEBHOOKS_DEDUPLICATED = Counter(
    "payment_webhooks_deduplicated_total", "Payment webhooks already seen (same webhook-id): ignored.", ["type"]
)
CELERY_TASKS = Counter("celery_tasks_total", "Celery task outcomes: success, failure, retry.", ["task", "outcome"])
COMMIT_HOOK_FAILURES = Counter(
    "commit_hook_failures_total",
    "After-commit kicks that failed (broker or cache down); the committed answer stood, a sweeper redoes the kick.",
    ["hook"],
)


# --- recording helpers (small calls for the services) ---------------------------------------


def metrics_observe_request(*, request: HttpRequest, status: int, seconds: float) -> None:
    match = getattr(request, "resolver_match", None)
    route = f"/{match.route}" if match is not None and match.route else "unmatched"
    labels = (route, request.method or "", str(status))
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_REQUEST_DURATION.labels(*labels).observe(seconds)


def metrics_invoice_attempt(*, outcome: str) -> None:
    INVOICE_NUMBERING_ATTEMPTS.labels(outcome).inc()


def metrics_invoice_simulated_failure(*, series: str) -> None:
    INVOICE_SIMULATED_FAILURES.labels(series).inc()


def metrics_invoice_issued(*, series: str, placed_at: Any, issued_at: Any) -> None:
    INVOICE_TIME_TO_NUMBER.labels(series).observe(max(0.0, (issued_at - placed_at).total_seconds()))


def metrics_webhook(*, outcome: str, event_type: str = "", reason: str = "") -> None:
    """outcome: "received" (accepted and processed), "rejected" (with a reason) or "deduplicated"."""
    if outcome == "received":
        WEBHOOKS_RECEIVED.labels(event_type or "unknown").inc()
    elif outcome == "rejected":
        WEBHOOKS_REJECTED.labels(reason or "invalid").inc()
    elif outcome == "deduplicated":
        WEBHOOKS_DEDUPLICATED.labels(event_type or "unknown").inc()
    else:
        raise ValueError(f"unknown webhook outcome {outcome!r}")


def metrics_commit_hook_failure(*, hook: str) -> None:
    COMMIT_HOOK_FAILURES.labels(hook).inc()


def metrics_celery_task(*, task: str, outcome: str) -> None:
    CELERY_TASKS.labels(task, outcome).inc()


# --- scrape-time gauges from the database ---------------------------------------------------


# Scrape-time collectors of the apps that own the data (registered in AppConfig.ready).
APP_COLLECTORS: list[Collector] = []


def metrics_collector_register(*, collector: Collector) -> None:
    if all(type(c) is not type(collector) for c in APP_COLLECTORS):
        APP_COLLECTORS.append(collector)


class _ProcessRegistry(Collector):
    """This process's own default registry (single-process mode)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def metrics_multiproc_dirs() -> list[Path]:
    """The multiprocess directories to add up: this process's and its siblings'."""
    own = settings.PROMETHEUS_MULTIPROC_DIR
    if not own:
        return []
    root = Path(own).resolve().parent
    return sorted(p for p in root.iterdir() if p.is_dir())


def metrics_multiproc_cleanup(*, path: str | os.PathLike[str]) -> list[Path]:
    """Remove the value files of processes that are gone (a restarted service starts
    its counters again; Prometheus handles counter resets). Returns what was removed."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    removed = []
    for file in folder.glob("*.db"):
        pid_text = file.stem.rsplit("_", 1)[-1]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            file.unlink(missing_ok=True)
            removed.append(file)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def metrics_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    dirs = metrics_multiproc_dirs()
    if dirs:
        for folder in dirs:
            MultiProcessCollector(registry, path=str(folder))
    else:
        registry.register(_ProcessRegistry())
    for collector in APP_COLLECTORS:
        registry.register(collector)
    return registry


# --- the endpoint ---------------------------------------------------------------------------


def _bearer_token_ok(request: HttpRequest) -> bool:
    expected: str = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if not expected or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header.removeprefix("Bearer ").strip().encode(), expected.encode())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for staff (session) or `Authorization: Bearer <METRICS_TOKEN>`."""
    from common.api import error_body

    if not _bearer_token_ok(request):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            refused = JsonResponse(
                error_body("not_authenticated", "Metrics need a staff session or the metrics bearer token."), status=401
            )
            refused["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return refused
        if not (user.is_active and user.is_staff):
            return JsonResponse(error_body("permission_denied", "Metrics are for staff."), status=403)
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
