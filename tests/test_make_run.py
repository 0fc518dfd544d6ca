"""`make run` as a newcomer runs it: no DATABASE_URL, no REDIS_URL, nothing but a shell.

It must come up on the embedded defaults (SQLite under var/, Celery's filesystem broker),
answer the shop, the admin, the API and the health check, and stop completely on Ctrl-C
(SIGINT to the foreground process group, as a terminal sends it), leaving no gunicorn or
Celery process behind. honcho starts each Procfile process in its own session, so the
test tracks every descendant process by pid, not only the process group of `make`.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 180  # a first run may create .venv and install requirements
STOP_TIMEOUT_S = 20
# What a newcomer's shell has; nothing the test run set (DJANGO_SETTINGS_MODULE, DATABASE_URL...).
SHELL_VARIABLES = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TERM", "TMPDIR")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own server
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) for every process on the machine."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry.name)] = (ppid, cmdline)
    return table


def descendants(root: int) -> dict[int, str]:
    table = process_table()
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, cmdline) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = cmdline
                frontier.append(pid)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; it only waits for its parent to read its status.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_make_run_serves_the_shop_on_embedded_defaults_and_stops_cleanly_on_ctrl_c():
    port = free_port()
    env = {name: os.environ[name] for name in SHELL_VARIABLES if name in os.environ}
    env["PORT"] = str(port)
    log_path = ROOT / "test-artifacts" / "make-run.log"
    log_path.parent.mkdir(exist_ok=True)
    base = f"http://127.0.0.1:{port}"

    with log_path.open("wb") as log:
        make = subprocess.Popen(
            ["make", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    tracked: dict[int, str] = {}
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert make.poll() is None, f"make run exited early ({make.returncode}):\n{log_path.read_text()[-3000:]}"
            with contextlib.suppress(OSError):
                if fetch(f"{base}/", timeout=3)[0] == 200:
                    break
            assert time.monotonic() < deadline, f"no answer on {base}/ after {START_TIMEOUT_S}s"
            time.sleep(1)

        status, body = fetch(f"{base}/")
        assert status == 200
        assert b"Enamel camp mug" in body  # the demo catalog
        assert fetch(f"{base}/admin/login/")[0] == 200

        status, body = fetch(f"{base}/api/v1/products/")
        assert status == 200
        products = json.loads(body)
        assert products["count"] == 12
        assert len(products["results"]) == 12
        assert {p["sku"] for p in products["results"]} >= {"MUG-001", "KEY-012"}

        # Embedded mode for real: SQLite and the filesystem broker, and the worker is up
        # (its heartbeat arrives shortly after the web answers).
        for _ in range(60):
            status, body = fetch(f"{base}/health/")
            health = json.loads(body)
            if status == 200:
                break
            time.sleep(1)
        assert status == 200, health
        components = health["components"]
        assert components["database"]["backend"] == "sqlite", health
        assert components["broker"]["backend"] == "filesystem", health
        assert (ROOT / "var" / "db.sqlite3").exists()

        tracked = descendants(make.pid)
        commands = list(tracked.values())
        assert any("gunicorn" in c for c in commands), commands
        assert any("celery" in c and " worker" in c for c in commands), commands
        assert any("celery" in c and " beat" in c for c in commands), commands

        # Ctrl-C: SIGINT to the foreground process group (make and honcho).
        stopped_at = time.monotonic()
        os.killpg(make.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            make.wait(timeout=STOP_TIMEOUT_S)
        assert make.poll() is not None, "make run did not exit after Ctrl-C"
        while any(alive(pid) for pid in tracked) and time.monotonic() - stopped_at < STOP_TIMEOUT_S:
            time.sleep(0.2)
        leftovers = {pid: cmd for pid, cmd in tracked.items() if alive(pid)}
        assert leftovers == {}, f"still running {time.monotonic() - stopped_at:.1f}s after Ctrl-C: {leftovers}"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(make.pid, 0)
            pytest.fail("the process group of make run is still there")
        assert not port_open(port), f"something still listens on {port}"
        output = log_path.read_text(errors="replace")
        assert "SIGINT received" in output
        for name in ("web.1", "worker.1", "beat.1"):
            assert f"{name} stopped" in output, output[-3000:]
    finally:
        # Never leave a server behind, whatever failed above: kill what is still ours.
        ours = {**tracked, **descendants(make.pid)}
        with contextlib.suppress(ProcessLookupError):
            os.killpg(make.pid, signal.SIGKILL)
        table = process_table()
        for pid, cmdline in ours.items():
            if pid in table and table[pid][1] == cmdline:  # the same process, not a reused pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        make.wait(timeout=10)
