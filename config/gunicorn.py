"""gunicorn settings: gthread workers sized from the CPU count, graceful shutdown.

Sizing: WEB_CONCURRENCY processes (default 2 x CPUs + 1, at least 2) x GUNICORN_THREADS
threads (default 4). Each thread may hold one database connection: keep
processes x threads below PostgreSQL's max_connections (or use DATABASE_POOL).

Shutdown: on SIGTERM gunicorn stops accepting, lets in-flight requests finish for up to
GUNICORN_GRACEFUL_TIMEOUT seconds, then exits; keep the orchestrator's stop grace period
longer than that (docker compose: stop_grace_period 30s).

Metrics: with PROMETHEUS_MULTIPROC_DIR set (one directory per service under a shared
root, see common/metrics.py), the master removes files left by dead processes at start
and marks exited workers dead.
"""

import multiprocessing
import os
from typing import Any

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, multiprocessing.cpu_count() * 2 + 1)))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# A worker silent for this long is killed and replaced (a stuck request, a deadlock).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# No recycling by default: a gthread worker restarting after max_requests resets the
# keep-alive connections it still holds (gunicorn issue #3038), so a shopper's checkout or a
# provider's webhook could be dropped (tests/ops/test_gunicorn_keepalive.py). Bound memory
# with the container's limit instead; GUNICORN_MAX_REQUESTS turns recycling on if needed.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "0"))
# Heartbeat files in memory, not on a possibly slow container filesystem.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
# The app logs every request as JSON (django-structlog's request_finished, with the request
# id); gunicorn's own access log is off unless asked for.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
# Trust X-Forwarded-* only from the proxy in front (comma-separated IPs, or * behind a private network).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server: Any) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from common.metrics import metrics_multiproc_cleanup

        metrics_multiproc_cleanup(path=directory)


def when_ready(server: Any) -> None:
    """Say so at once when SITE_URL (links, the simulated provider's webhooks) points at a
    local port other than the one this server listens on: payments would never arrive."""
    from urllib.parse import urlsplit

    site = urlsplit(os.environ.get("SITE_URL", "http://127.0.0.1:8000"))
    port = os.environ.get("PORT", "8000")
    if site.hostname in ("127.0.0.1", "localhost", "::1") and str(site.port or 80) != port:
        server.log.warning(
            "SITE_URL %s is not this server (listening on port %s): webhooks and links will not reach it. "
            "Set SITE_URL for every process (make run does).",
            site.geturl(),
            port,
        )


def post_worker_init(worker: Any) -> None:
    """The app is loaded in this worker (preload is off): keep the collector off it."""
    from common.runtime import process_heap_freeze

    process_heap_freeze()


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
