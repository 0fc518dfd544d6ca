"""No accepted connection is dropped when the web recycles: with `max_requests` the threaded
(gthread) gunicorn worker resets keep-alive connections it still holds when it restarts
(gunicorn issue #3038; measured here before: 12 resets in 10,400 webhook deliveries, each
within 3 s of an "Autorestarting worker" line). config/gunicorn.py therefore does not recycle
workers unless GUNICORN_MAX_REQUESTS asks for it. Proof under load: clients on keep-alive
connections send thousands of requests to the production-shaped server; none may fail.
The same load against a recycling server is run for contrast and its failures reported."""

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 8
REQUESTS_PER_CLIENT = 400


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def gunicorn(**env: str):
    port = _free_port()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
        **env,
    }
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = ROOT / "test-artifacts" / f"gunicorn-keepalive-{env.get('GUNICORN_MAX_REQUESTS', 'default')}.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--config", "config/gunicorn.py"],
            cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/health/live/")
                if conn.getresponse().status == 200:
                    break
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        yield port, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def keepalive_load(port: int) -> tuple[int, int, list[str]]:
    """Each client keeps one connection open for all its requests (reconnecting only after a
    failure). Returns (ok, failed, the first few errors)."""
    ok = failed = 0
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        nonlocal ok, failed
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(REQUESTS_PER_CLIENT):
            try:
                conn.request("GET", "/health/live/")
                response = conn.getresponse()
                response.read()
                good = response.status == 200
                error = "" if good else f"HTTP {response.status}"
            except (OSError, http.client.HTTPException) as exc:
                good, error = False, f"{type(exc).__name__}: {exc}"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            with lock:
                ok += good
                failed += not good
                if error and len(errors) < 5:
                    errors.append(error)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return ok, failed, errors


def test_the_production_config_drops_no_keepalive_request_under_load():
    with gunicorn() as (port, log):
        ok, failed, errors = keepalive_load(port)
        assert "Autorestarting worker" not in log.read_text()
    assert (ok, failed) == (CLIENTS * REQUESTS_PER_CLIENT, 0), errors

    # Contrast: the same load against a server that recycles its workers every 100 requests.
    with gunicorn(GUNICORN_MAX_REQUESTS="100", GUNICORN_MAX_REQUESTS_JITTER="0") as (port, log):
        ok, failed, errors = keepalive_load(port)
        restarts = log.read_text().count("Autorestarting worker")
    print(f"with max_requests=100: {restarts} worker restarts, {failed} of {ok + failed} requests failed {errors[:2]}")
    assert restarts > 0  # the contrast really recycled...
    assert failed > 0  # ...and this load does catch the connections a recycling worker drops
