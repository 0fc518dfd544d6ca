"""A smoke run of every command the README names, at tiny sizes, so none can break silently.

`make run` has its own module (test_make_run.py: the whole shopper journey); `make test` is
this run. Here: `make bench` (a real worker, PostgreSQL and Redis, on its own database and
Redis db), `make lint`, `make format` (on a copy of the tree: it must find nothing to change)
and the `docker compose` file (no Docker engine here: its shape is checked instead).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/commerce")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
# What a shell has; nothing the test run set (DJANGO_SETTINGS_MODULE, DEBUG, secrets...).
SHELL_VARIABLES = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TERM", "TMPDIR")


def shell_env(**extra: str) -> dict[str, str]:
    return {**{n: os.environ[n] for n in SHELL_VARIABLES if n in os.environ}, **extra}


def make(*args: str, cwd: Path = ROOT, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", *args], cwd=cwd, env=shell_env(**env), capture_output=True, text=True, timeout=timeout, check=False
    )


def test_make_bench_runs_end_to_end_at_tiny_sizes():
    """Production settings (DEBUG off) as the bench uses them: it must bring its own secrets.
    The HTTP load runs too (web, three workers and beat, signed-in shoppers), briefly."""
    result = make(
        "bench",
        "BENCH_ARGS=--invoices 40 --orders 10 --per-second 20 --concurrency 2 --series 1,2 "
        "--flow-levels 1,2 --flow-seconds 3 --flow-warmup 1 --flow-drain 60 --request-orders 3 --instruction-orders 2",
        BENCH_DATABASE_URL=os.environ.get("BENCH_DATABASE_URL", re.sub(r"/[^/]*$", "/commerce_bench_smoke", PG_URL)),
        BENCH_REDIS_URL=os.environ.get("BENCH_REDIS_URL", REDIS_URL.rsplit("/", 1)[0] + "/11"),
        DATABASE_URL=PG_URL,
        REDIS_URL=REDIS_URL,
        timeout=600,  # a fresh checkout collects static files first (about a minute)
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "invoices/s" in output
    # The in-process CPU per request of the same flow, a row of figures under its header.
    assert re.search(r"\| cart \| checkout \| pay \| webhook \| poll \| per order \|\n.*\n(\| [\d.]+ ms ){6}\|", output)
    # The instructions per order of the same flow, counted under valgrind (on every machine kind).
    assert re.search(
        r"Instructions per order in one process \(valgrind callgrind, 2 orders .*\*\*[\d.]+ M\*\*", output
    ), output[-3000:]
    # The gap audit: every number of every series exactly once.
    assert "1..N complete" in output, output[-2000:]
    assert "GAPS" not in output, output[-2000:]
    # The four lines, printed last, figures filled in (c2 stands for c8 at this size).
    number = r"\d+(\.\d+)?"
    last = result.stdout.strip().splitlines()[-4:]
    patterns = [
        rf"bench numbering: worker {number}/s, raw-sql {number}/s, ratio {number}",
        rf"bench flow c2: accepted {number}/s, completed {number}/s, ratio {number}, "
        rf"pay-to-number p50 {number} s p99 {number} s at failure rate 0\.5",
        rf"bench poll c2: p95 {number} ms",
        rf"bench web c2: cpu per order {number} ms, accepted c2/c2 ratio {number}",
    ]
    for line, pattern in zip(last, patterns, strict=True):
        assert re.fullmatch(pattern, line), (line, output[-3000:])


def test_make_chaos_settles_every_order_at_tiny_size():
    """The outside chaos check at a tiny size: workers SIGKILLed every half second, the broker
    emptied twice and PostgreSQL's connections terminated twice while shoppers buy over HTTP;
    then every accepted order is paid once and numbered, numbers 1..N. Short leases and
    staleness (environment, as in production) so the sweepers finish within beat's 10 s."""
    result = make(
        "chaos",
        "CHAOS_ARGS=--orders 30 --shoppers 2 --kill-every 0.5 --settle 150",
        BENCH_DATABASE_URL=os.environ.get("BENCH_DATABASE_URL", re.sub(r"/[^/]*$", "/commerce_chaos_smoke", PG_URL)),
        BENCH_REDIS_URL=os.environ.get("BENCH_REDIS_URL", REDIS_URL.rsplit("/", 1)[0] + "/10"),
        DATABASE_URL=PG_URL,
        REDIS_URL=REDIS_URL,
        PAYMENT_SIM_DELIVERY_LEASE_S="3",
        INVOICE_SWEEP_STALE_S="3",
        PAYMENT_CHARGE_RESUBMIT_S="2",
        timeout=600,  # a fresh checkout collects static files first (about a minute)
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    # Shoppers already in the flow finish their order: a few more than 30 may be accepted.
    faults = r"chaos: (\d+) orders accepted over HTTP in \d+ s; [1-9]\d* SIGKILLs, 2 broker flushes, 2 connection"
    accepted = re.search(faults, output)
    assert accepted, output[-3000:]
    assert int(accepted[1]) >= 30
    settled = r"every accepted order paid and numbered [\d.]+ s after the faults stopped"
    assert re.search(settled, output), output[-3000:]
    assert "orders paid more than once: 0" in output
    n = accepted[1]
    assert f"series INV: {n} numbers, max {n}, missing 0, duplicated 0: 1..N complete" in output, output[-3000:]


def test_make_lint_passes():
    result = make("lint")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


def test_make_format_finds_nothing_to_change(tmp_path):
    tree = tmp_path / "tree"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()  # fmt: skip
    for name in files:
        source = ROOT / name
        if source.is_file():
            target = tree / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (tree / ".venv").symlink_to(ROOT / ".venv")
    before = {name: (tree / name).read_bytes() for name in files if (tree / name).is_file()}

    result = make("format", cwd=tree)

    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    changed = [name for name, content in before.items() if (tree / name).read_bytes() != content]
    assert changed == []


def test_docker_compose_stack_agrees_on_one_site_url_and_needs_its_secrets():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {
        "postgres", "redis", "migrate", "proxy", "web", "webhooks", "polls", "worker", "documents", "provider", "beat"
    }  # fmt: skip
    app = ["migrate", "web", "webhooks", "polls", "worker", "documents", "provider", "beat"]
    environments = [services[name]["environment"] for name in app]
    # Every process sees the same addresses: links reach the web, the provider's webhooks the
    # webhooks service (the same app and settings in its own gunicorn).
    assert len({(e["SITE_URL"], e["PAYMENT_WEBHOOK_URL"], e["PORT"]) for e in environments}) == 1
    web_env = services["web"]["environment"]
    assert web_env["PAYMENT_WEBHOOK_URL"].startswith(f"http://webhooks:{web_env['PORT']}/api/v1/webhooks/")
    assert "webhooks" in web_env["ALLOWED_HOSTS"].split(",")
    assert services["webhooks"]["command"][2].startswith(
        services["web"]["command"][2].split(" && ")[0].replace("web-", "webhooks-")
    )
    assert "exec gunicorn config.wsgi:application --config config/gunicorn.py" in services["webhooks"]["command"][2]
    assert "exec gunicorn config.wsgi:application --config config/gunicorn.py" in services["polls"]["command"][2]
    assert "--workers 1 " in services["polls"]["command"][2]  # polls hold one core at most
    # Every service keeps the connection health check: it costs no round trip
    # (common/postgresql/base.py), and without it a poll after a restart answered 503.
    assert not [name for name in app if "CONN_HEALTH_CHECKS" in (services[name].get("environment") or {})]
    # Only the proxy is published; web, polls and webhooks are reached inside the stack.
    assert [name for name, service in services.items() if "ports" in service] == ["proxy"]
    assert f"{web_env['PORT']}:{web_env['PORT']}" in services["proxy"]["ports"]
    assert "./config/nginx.conf:/etc/nginx/nginx.conf:ro" in services["proxy"]["volumes"]
    assert web_env["NUM_PROXIES"] == "1"  # the client's address, not the proxy's, for throttles
    # CPU weight: polls (and the proxy they pass) first, then payments in flight, then
    # shoppers, numbering and the provider; PDFs last.
    shares = {name: services[name].get("cpu_shares", 1024) for name in [*app, "proxy"]}
    assert shares["documents"] < shares["web"] == shares["worker"] < shares["webhooks"] < shares["polls"]
    assert shares["proxy"] == shares["polls"]
    assert web_env["DEBUG"] == "false"
    assert web_env["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert web_env["PAYMENT_WEBHOOK_SECRET"].startswith("${PAYMENT_WEBHOOK_SECRET:?")
    # One worker per queue: the critical path ("celery"), documents, the simulated provider.
    for service, queue in (("worker", "celery"), ("documents", "documents"), ("provider", "provider")):
        assert f"celery -A config worker -Q {queue} " in " ".join(services[service]["command"])
    # The provider's thread pool acks in its threads, which do not wake the consumer's event
    # loop: with only `concurrency` messages prefetched it fetched more on its next tick (up to
    # 1 s), ~30 deliveries/s at most (bench/RESULTS.md). It prefetches several per thread.
    provider = " ".join(services["provider"]["command"])
    assert "--pool=threads" in provider
    assert int(re.search(r"--prefetch-multiplier=(\d+)", provider)[1]) >= 4
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]
    # The Procfile's processes are the compose services' processes.
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line)
    assert set(procfile) == {"web", "worker", "documents", "provider", "beat"}
    for name, queue in (("worker", "celery"), ("documents", "documents"), ("provider", "provider")):
        assert f" worker -Q {queue} " in procfile[name]
    assert "gunicorn config.wsgi:application --config config/gunicorn.py" in procfile["web"]


def test_the_proxy_routes_the_invoice_block_poll_to_polls_and_the_rest_to_web():
    """config/nginx.conf's locations against the app's own URLs: the poll's route
    (orders/urls.py) goes to the polls pool, the order page, the API and the admin to web."""
    from django.urls import reverse

    conf = (ROOT / "config" / "nginx.conf").read_text()
    locations = dict(re.findall(r"location (~ \S+|/) \{\s*proxy_pass http://(\w+);", conf))
    assert set(locations.values()) == {"polls", "web"}, locations
    assert re.search(r"upstream web \{\s*zone web 64k;\s*server web:8000 resolve;", conf)
    assert re.search(r"upstream polls \{\s*zone polls 64k;\s*server polls:8000 resolve;", conf)

    def upstream(path: str) -> str:
        for location, target in locations.items():
            if location.startswith("~ ") and re.search(location[2:], path):
                return target
        return locations["/"]

    assert upstream(reverse("order-invoice-block", args=[12345])) == "polls"
    for path in (reverse("order", args=[12345]), "/api/v1/checkout/", "/admin/", "/orders/12345/invoice-block/x"):
        assert upstream(path) == "web", path
