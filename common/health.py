"""Readiness and liveness.

`/health/` (readiness) checks the database, the broker, the cache and that a Celery worker
is alive: 200 with each component's state, 503 naming the failing ones. `/health/live/`
answers without touching any dependency (for a process supervisor's liveness probe).

Worker liveness: every worker's main process writes a heartbeat (its hostname and a
timestamp) into the Django cache every HEALTH_WORKER_HEARTBEAT_S seconds from a daemon
thread started on `worker_ready` (common/celery_hooks.py). The cache is Redis with
REDIS_URL and a file cache under var/ in the embedded `make run` mode; both are shared by
web and worker processes, so the check works the same in both. A heartbeat older than
HEALTH_WORKER_MAX_AGE_S means no worker is alive (or none can reach the cache).
"""

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "health:worker-heartbeat"


def _backend_name(url_or_backend: str) -> str:
    lowered = url_or_backend.lower()
    if lowered.startswith(("redis://", "rediss://")) or "redis" in lowered:
        return "redis"
    if lowered.startswith("filesystem://") or "filebased" in lowered:
        return "filesystem"
    return lowered.split(":", 1)[0] or "unknown"


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"backend": connection.vendor}


def _check_broker() -> dict[str, Any]:
    url: str = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        folder = Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]))
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".health"
        probe.write_text("ok")
        probe.unlink()
        return {"backend": "filesystem"}
    from kombu import Connection

    with Connection(url, connect_timeout=settings.HEALTH_CHECK_TIMEOUT_S) as conn:
        conn.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, timeout=settings.HEALTH_CHECK_TIMEOUT_S
        )
    return {"backend": _backend_name(url)}


def _check_cache() -> dict[str, Any]:
    cache.set("health:probe", "ok", timeout=10)
    if cache.get("health:probe") != "ok":
        raise RuntimeError("the cache did not return what was written")
    return {"backend": _backend_name(settings.CACHES["default"]["BACKEND"])}


def _check_worker() -> dict[str, Any]:
    beat = cache.get(HEARTBEAT_KEY)
    if not beat:
        raise RuntimeError("no worker heartbeat: no Celery worker is running (or none reaches the cache)")
    age = time.time() - float(beat["at"])
    if age > settings.HEALTH_WORKER_MAX_AGE_S:
        raise RuntimeError(f"last worker heartbeat ({beat['hostname']}) is {age:.0f}s old")
    return {"hostname": beat["hostname"], "last_seen_s": round(max(age, 0.0), 1)}


CHECKS: dict[str, Callable[[], dict[str, Any]]] = {
    "database": _check_database,
    "broker": _check_broker,
    "cache": _check_cache,
    "worker": _check_worker,
}
_BACKEND_OF = {
    "broker": lambda: _backend_name(settings.CELERY_BROKER_URL),
    "cache": lambda: _backend_name(settings.CACHES["default"]["BACKEND"]),
}


# Backlogs that do not make the process unready but that staff must see (a webhook URL that
# nothing answers, say): registered by the apps that own them (AppConfig.ready), reported
# under "backlogs" with status "ok" or "warning", named in "warnings". They never turn 200 to 503.
BACKLOG_CHECKS: dict[str, Callable[[], dict[str, Any]]] = {}


def health_backlog_register(*, name: str, check: Callable[[], dict[str, Any]]) -> None:
    BACKLOG_CHECKS[name] = check


# Facts about the configuration that staff want next to the checks (which payment provider is
# configured): registered by the apps that own them, reported at the top level under their
# name. Informational only: they never fail and never turn 200 to 503.
INFO_SECTIONS: dict[str, Callable[[], dict[str, Any]]] = {}


def health_info_register(*, name: str, info: Callable[[], dict[str, Any]]) -> None:
    if name in {"status", "failing", "components", "warnings", "backlogs"}:
        raise ValueError(f"{name!r} is a key of the health report itself")
    INFO_SECTIONS[name] = info


def _info_sections() -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {}
    for name, info in INFO_SECTIONS.items():
        try:
            sections[name] = info()
        except Exception as exc:
            sections[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return sections


def _backlogs() -> dict[str, dict[str, Any]]:
    backlogs: dict[str, dict[str, Any]] = {}
    for name, check in BACKLOG_CHECKS.items():
        try:
            backlogs[name] = check()
        except Exception as exc:  # the database check above says why
            backlogs[name] = {"status": "unknown", "error": f"{type(exc).__name__}: {exc}"[:300]}
    return backlogs


def health_report() -> tuple[bool, dict[str, Any]]:
    components: dict[str, dict[str, Any]] = {}
    for name, check in CHECKS.items():
        try:
            components[name] = {"status": "ok", **check()}
        except Exception as exc:  # any failure means "not ready": say which and why
            state: dict[str, Any] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
            if name in _BACKEND_OF:
                state["backend"] = _BACKEND_OF[name]()
            components[name] = state
    failing = [name for name, c in components.items() if c["status"] != "ok"]
    backlogs = _backlogs()
    body = {
        "status": "ok" if not failing else "error",
        "failing": failing,
        "components": components,
        "warnings": [name for name, b in backlogs.items() if b.get("status") == "warning"],
        "backlogs": backlogs,
        **_info_sections(),
    }
    return not failing, body


def health(request: HttpRequest) -> JsonResponse:
    ok, body = health_report()
    if not ok:
        logger.warning("health check failing: %s", ", ".join(body["failing"]))
    elif body["warnings"]:
        logger.warning("health warnings: %s", ", ".join(body["warnings"]))
    return JsonResponse(body, status=200 if ok else 503)


def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


# --- worker heartbeat -----------------------------------------------------------------------

_stop = threading.Event()
_thread: threading.Thread | None = None


def worker_heartbeat_write(*, hostname: str) -> None:
    timeout = max(int(settings.HEALTH_WORKER_MAX_AGE_S * 2), 1)
    cache.set(HEARTBEAT_KEY, {"hostname": hostname, "at": time.time()}, timeout=timeout)


def worker_heartbeat_start(*, hostname: str) -> None:
    """Start the heartbeat thread of this worker process (idempotent)."""
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    _stop.clear()

    def beat() -> None:
        while not _stop.is_set():
            try:
                worker_heartbeat_write(hostname=hostname)
            except Exception:  # the cache is down: /health/ reports it; keep trying
                logger.warning("worker heartbeat could not be written", exc_info=True)
            _stop.wait(settings.HEALTH_WORKER_HEARTBEAT_S)

    _thread = threading.Thread(target=beat, name="worker-heartbeat", daemon=True)
    _thread.start()


def worker_heartbeat_stop() -> None:
    _stop.set()
