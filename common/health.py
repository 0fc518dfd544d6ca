"""Readiness: the database, the broker and the cache must answer."""

from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_broker() -> None:
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        folder = Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]))
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".health"
        probe.write_text("ok")
        probe.unlink()
        return
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def _check_cache() -> None:
    cache.set("health:probe", "ok", timeout=10)
    if cache.get("health:probe") != "ok":
        raise RuntimeError("cache did not return what was written")


CHECKS: dict[str, Callable[[], None]] = {"database": _check_database, "broker": _check_broker, "cache": _check_cache}


def health(request: HttpRequest) -> JsonResponse:
    components: dict[str, dict[str, str]] = {}
    for name, check in CHECKS.items():
        try:
            check()
            components[name] = {"status": "ok"}
        except Exception as exc:  # any failure means "not ready"; say which and why
            components[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    failing = [name for name, c in components.items() if c["status"] != "ok"]
    body = {"status": "ok" if not failing else "error", "failing": failing, "components": components}
    return JsonResponse(body, status=200 if not failing else 503)


def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
