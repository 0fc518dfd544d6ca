"""/health/ (readiness: database, broker, cache, a live worker) and /health/live/."""

import time

from django.test import override_settings

from common.health import HEARTBEAT_KEY, worker_heartbeat_write

CLOSED = "redis://127.0.0.1:1/0"  # nothing listens on port 1
REDIS_DOWN = {
    "CACHES": {"default": {"BACKEND": "common.cache.RedisCache", "LOCATION": CLOSED}},
    "CELERY_BROKER_URL": CLOSED,
}


def test_ready_when_everything_answers_and_a_worker_beats(db, client):
    worker_heartbeat_write(hostname="celery@test-host")
    response = client.get("/health/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["failing"] == []
    assert set(body["components"]) == {"database", "broker", "cache", "worker"}
    assert all(c["status"] == "ok" for c in body["components"].values())
    assert body["components"]["broker"]["backend"] == "redis"
    assert body["components"]["worker"]["hostname"] == "celery@test-host"


def test_503_names_redis_broker_and_cache_when_redis_is_unreachable(db, client):
    worker_heartbeat_write(hostname="celery@test-host")
    with override_settings(**REDIS_DOWN):
        started = time.monotonic()
        response = client.get("/health/")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert {"broker", "cache"} <= set(body["failing"])
    assert "database" not in body["failing"]
    for name in ("broker", "cache"):
        component = body["components"][name]
        assert component["status"] == "error"
        assert component["backend"] == "redis"
        assert component["error"]
    assert body["components"]["database"]["status"] == "ok"
    assert elapsed < 10  # fails fast: probes must not hang


def test_503_when_no_worker_heartbeat(db, client):
    response = client.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["worker"]
    assert "no worker heartbeat" in body["components"]["worker"]["error"]


@override_settings(HEALTH_WORKER_MAX_AGE_S=60)
def test_503_when_the_heartbeat_is_stale(db, client):
    from django.core.cache import cache

    cache.set(HEARTBEAT_KEY, {"hostname": "celery@old", "at": time.time() - 120}, timeout=300)
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json()["failing"] == ["worker"]
    assert "celery@old" in response.json()["components"]["worker"]["error"]


def test_live_touches_no_dependency(db, client, django_assert_num_queries):
    with override_settings(**REDIS_DOWN), django_assert_num_queries(0):
        response = client.get("/health/live/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
