"""`make run` as a newcomer runs it, doing the product's main job.

The README's first command, started from a shell with nothing set but a non-default PORT
(no DATABASE_URL, REDIS_URL, PAYMENT_WEBHOOK_URL, SITE_URL or secrets), must serve the
shop, and a shopper in a real Chromium must be able to sign in, buy, pay on the simulated
provider's hosted page and see the order Paid with its invoice number `INV-n`; a second
order is declined first and then paid. The same journey runs on PostgreSQL + Redis
(DATABASE_URL / REDIS_URL set). Then Ctrl-C (SIGINT to the foreground process group, as a
terminal sends it) must stop web, worker and beat by themselves: honcho never has to
SIGKILL anything, and no process is left behind. honcho starts each Procfile process in its
own session, so every descendant is tracked by pid, not by process group.

On the embedded defaults the time from "paid" (the invoice row is created in the payment
webhook's transaction) to the invoice number is measured over a few orders paid through the
API and written to the log and test-artifacts/make-run-latency.txt (a figure, not an
assertion: see the README).
"""

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
START_TIMEOUT_S = 240  # a first run may create .venv, install requirements and collect static files
STOP_TIMEOUT_S = 20
OUTCOME_TIMEOUT_MS = 30_000  # payment outcome and invoice number on the order page
# What a newcomer's shell has; nothing the test run set (DJANGO_SETTINGS_MODULE, DATABASE_URL...).
SHELL_VARIABLES = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TERM", "TMPDIR")
PG_ADMIN_URL = os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/commerce")
MAKE_RUN_DB = "commerce_make_run"
MAKE_RUN_REDIS_DB = 13  # the test run owns db 15; this one belongs to the `make run` under test
ADDRESS = {"name": "Ada Lovelace", "line1": "12 Analytical Row", "city": "London", "postal_code": "N1 7AA",
           "country": "GB"}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str, *, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None,
          timeout: float = 10) -> tuple[int, bytes]:  # fmt: skip
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - our own server
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


class MakeRun:
    """`make run` in ROOT with exactly the given environment, its output in a log file."""

    def __init__(self, *, name: str, extra_env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {n: os.environ[n] for n in SHELL_VARIABLES if n in os.environ}
        self.env |= {"PORT": str(self.port), **extra_env}
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"make-run-{name}.log"
        with self.log_path.open("wb") as log:
            self.make = subprocess.Popen(
                ["make", "run"], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.tracked: dict[int, str] = {}

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> dict[str, Any]:
        """Until the shop answers and /health/ is green (the worker's heartbeat arrived)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert self.make.poll() is None, f"make run exited early ({self.make.returncode}):\n{self.output()[-3000:]}"
            with contextlib.suppress(OSError):
                status, body = fetch(f"{self.base}/health/", timeout=3)
                if status == 200:
                    self.tracked = descendants(self.make.pid)
                    return dict(json.loads(body))
            assert time.monotonic() < deadline, f"not ready on {self.base} after {START_TIMEOUT_S}s:\n{self.output()}"
            time.sleep(1)

    def ctrl_c(self) -> float:
        """SIGINT to the foreground process group (make and honcho); returns seconds to stop."""
        self.tracked |= descendants(self.make.pid)
        stopped_at = time.monotonic()
        os.killpg(self.make.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.make.wait(timeout=STOP_TIMEOUT_S)
        assert self.make.poll() is not None, "make run did not exit after Ctrl-C"
        while any(alive(pid) for pid in self.tracked) and time.monotonic() - stopped_at < STOP_TIMEOUT_S:
            time.sleep(0.2)
        leftovers = {pid: cmd for pid, cmd in self.tracked.items() if alive(pid)}
        assert leftovers == {}, f"still running {time.monotonic() - stopped_at:.1f}s after Ctrl-C: {leftovers}"
        return time.monotonic() - stopped_at

    def kill(self) -> None:
        """Never leave a server behind, whatever failed: kill what is still ours."""
        ours = {**self.tracked, **descendants(self.make.pid)}
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.make.pid, signal.SIGKILL)
        table = process_table()
        for pid, cmdline in ours.items():
            if pid in table and table[pid][1] == cmdline:  # the same process, not a reused pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.make.wait(timeout=10)


@contextlib.contextmanager
def make_run(*, name: str, extra_env: dict[str, str]) -> Iterator[MakeRun]:
    run = MakeRun(name=name, extra_env=extra_env)
    try:
        yield run
    finally:
        run.kill()


# --- the shopper, in Chromium -------------------------------------------------------------------


def new_page(browser: Any, base: str, name: str) -> tuple[Any, Page, list[str]]:
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and problems.append(f"console: {msg.text}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status} {r.url}"))
    return context, page, problems


def sign_in(page: Page) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("shopper")
    page.get_by_label("Password").fill("shopper-pass")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Hi, shopper")).to_be_visible()


def buy(page: Page, sku: str) -> int:
    """Catalog -> cart -> checkout -> the pay step; returns the order id."""
    page.goto("/")
    page.locator(f"li.card[data-sku='{sku}']").get_by_role("button", name="Add to cart").click()
    expect(page).to_have_url(re.compile(r"/cart/$"))
    page.get_by_role("link", name="Checkout").click()
    fields = {"Full name": "name", "Address": "line1", "City": "city", "Postal code": "postal_code"}
    for label, key in fields.items():
        page.get_by_label(label, exact=True).fill(ADDRESS[key])
    page.get_by_label("Country", exact=True).select_option(ADDRESS["country"])
    page.get_by_role("button", name="Place order").click()
    expect(page).to_have_url(re.compile(r"/orders/\d+/pay/$"))
    match = re.search(r"/orders/(\d+)/pay/$", page.url)
    assert match
    return int(match.group(1))


def pay_on_provider_page(page: Page, *, order_id: int, card: str) -> None:
    """The pay step's button, then the hosted page: choose the test card, pay, come back."""
    page.locator("#pay-button").click()
    expect(page).to_have_url(re.compile(r"/payments/simulated/sim_pi_[0-9a-f]+/$"))
    page.get_by_label(re.compile(card)).check()
    page.locator("#provider-pay").click()
    expect(page).to_have_url(re.compile(rf"/orders/{order_id}/$"))


def expect_paid_with_number(page: Page) -> str:
    """The order page turns Paid by itself, then shows the invoice number."""
    expect(page.get_by_test_id("payment-status")).to_have_text("Paid", timeout=OUTCOME_TIMEOUT_MS)
    expect(page.get_by_test_id("order-status")).to_have_text("Paid")
    expect(page.get_by_test_id("invoice-number")).to_have_text(re.compile(r"^INV-\d+$"), timeout=OUTCOME_TIMEOUT_MS)
    expect(page.locator("#payment-block")).to_contain_text("Test card, succeeds")
    return page.get_by_test_id("invoice-number").inner_text()


def best_stocked(base: str, count: int) -> list[str]:
    """The SKUs with the most stock available (a developer's var/ may have sold some out)."""
    status, body = fetch(f"{base}/api/v1/products/")
    assert status == 200, body
    products = sorted(json.loads(body)["results"], key=lambda p: p["available"], reverse=True)
    assert products[count - 1]["available"] >= 10, products
    return [p["sku"] for p in products[:count]]


def shopper_journey(browser: Any, run: MakeRun, name: str) -> list[tuple[int, str]]:
    """Two orders: one paid at once, one declined and then paid. Returns (order id, INV-n)."""
    first_sku, second_sku = best_stocked(run.base, 2)
    context, page, problems = new_page(browser, run.base, name)
    paid: list[tuple[int, str]] = []
    try:
        sign_in(page)
        first = buy(page, first_sku)
        pay_on_provider_page(page, order_id=first, card="pm_card_success")
        paid.append((first, expect_paid_with_number(page)))
        page.screenshot(path=str(ARTIFACTS / f"make-run-{name}-paid.png"), full_page=True)

        second = buy(page, second_sku)
        pay_on_provider_page(page, order_id=second, card="pm_card_declined")
        expect(page.get_by_test_id("payment-status")).to_have_text("Failed", timeout=OUTCOME_TIMEOUT_MS)
        expect(page.get_by_test_id("payment-failure")).to_have_text("Your card was declined.")
        page.screenshot(path=str(ARTIFACTS / f"make-run-{name}-declined.png"), full_page=True)
        page.locator("#pay-again").click()
        expect(page).to_have_url(re.compile(rf"/orders/{second}/pay/$"))
        pay_on_provider_page(page, order_id=second, card="pm_card_success")
        paid.append((second, expect_paid_with_number(page)))
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / f"make-run-{name}-failure.png"), full_page=True)
        raise
    finally:
        context.close()
    # The declined card answers 402-free: only the page's own requests, none failing.
    assert problems == [], problems
    return paid


# --- the API client -----------------------------------------------------------------------------


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        status, body = fetch(f"{base}/api/v1/auth/token/", method="POST",
                             body={"username": "shopper", "password": "shopper-pass"})  # fmt: skip
        assert status == 200, body
        self.headers = {"Authorization": f"Token {json.loads(body)['token']}"}

    def call(self, method: str, path: str, body: Any = None, *, key: bool = False) -> tuple[int, Any]:
        headers = dict(self.headers)
        if key:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        status, raw = fetch(f"{self.base}{path}", method=method, body=body, headers=headers)
        return status, json.loads(raw) if raw else None

    def order_paid(self, sku: str) -> int:
        """Cart -> checkout -> pay with the success card; returns the order id."""
        status, body = self.call("POST", "/api/v1/cart/items/", {"sku": sku, "quantity": 1})
        assert status == 201, body
        status, order = self.call("POST", "/api/v1/checkout/", {"shipping_address": ADDRESS}, key=True)
        assert status == 201, order
        status, attempt = self.call("POST", f"/api/v1/orders/{order['id']}/payments/",
                                    {"payment_method": "pm_card_success"}, key=True)  # fmt: skip
        assert status == 201, attempt
        return int(order["id"])

    def wait_numbered(self, order_id: int, timeout_s: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            status, order = self.call("GET", f"/api/v1/orders/{order_id}/")
            assert status == 200, order
            if order["invoice"] and order["invoice"]["invoice_number"] is not None:
                return dict(order)
            assert time.monotonic() < deadline, f"order {order_id} not numbered after {timeout_s}s: {order}"
            time.sleep(0.2)


def assert_numbered_over_api(api: Api, paid: list[tuple[int, str]]) -> None:
    for order_id, shown in paid:
        status, order = api.call("GET", f"/api/v1/orders/{order_id}/")
        assert status == 200, order
        assert order["status"] == "paid"
        assert order["payment_status"] == "paid"
        invoice = order["invoice"]
        assert invoice["status"] == "issued"
        assert shown == invoice["display_number"] == f"INV-{invoice['invoice_number']}"
        status, envelope = api.call("GET", f"/api/v1/orders/{order_id}/invoice/")
        assert status == 200, envelope
        assert envelope["invoice"]["display_number"] == shown


def assert_stops_cleanly(run: MakeRun) -> None:
    run.ctrl_c()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(run.make.pid, 0)
        pytest.fail("the process group of make run is still there")
    assert not port_open(run.port), f"something still listens on {run.port}"
    output = run.output()
    assert "SIGINT received" in output
    for name in ("web.1", "worker.1", "documents.1", "provider.1", "beat.1"):
        assert f"{name} stopped" in output, output[-3000:]
    assert "SIGKILL" not in output, output[-3000:]  # every process stopped by itself


def assert_quiet_at_idle(run: MakeRun, seconds: float = 12) -> None:
    """Beat's routine runs (every 5-10 s) log at DEBUG: nothing scrolls the banner away."""
    before = run.output().count("\n")
    time.sleep(seconds)
    added = run.output().splitlines()[before:]
    # A relay run that published something may say so; the routine beat traffic may not.
    pattern = re.compile(r"Sending due task|\] received|task_started|succeeded in .*: 0 ")
    routine = [line for line in added if pattern.search(line)]
    assert routine == [], "\n".join(routine)
    assert len(added) < 10, "\n".join(added)
    assert "Shop:      " + run.base + "/" in run.output()


# --- the tests ------------------------------------------------------------------------------


def test_make_run_on_embedded_defaults_a_shopper_pays_and_gets_an_invoice_number(browser):
    with make_run(name="embedded", extra_env={}) as run:
        health = run.wait_ready()
        components = health["components"]
        assert components["database"]["backend"] == "sqlite", health
        assert components["broker"]["backend"] == "filesystem", health
        # Every process agrees on the web's address, whatever PORT honcho gave each one.
        assert health["backlogs"]["webhook_deliveries"]["url"] == f"{run.base}/api/v1/webhooks/payments/"
        assert (ROOT / "var" / "db.sqlite3").exists()
        commands = list(run.tracked.values())
        assert any("gunicorn" in c for c in commands), commands
        assert any("celery" in c and " worker" in c for c in commands), commands
        assert any("celery" in c and " beat" in c for c in commands), commands

        status, body = fetch(f"{run.base}/")
        assert status == 200
        assert b"Enamel camp mug" in body  # the demo catalog
        assert fetch(f"{run.base}/admin/login/")[0] == 200
        status, body = fetch(f"{run.base}/api/v1/products/")
        assert status == 200
        products = json.loads(body)
        assert products["count"] == 12
        assert {p["sku"] for p in products["results"]} >= {"MUG-001", "KEY-012"}

        assert_quiet_at_idle(run)
        paid = shopper_journey(browser, run, "embedded")
        api = Api(run.base)
        assert_numbered_over_api(api, paid)
        report_paid_to_number_latency(api, run)

        health = json.loads(fetch(f"{run.base}/health/")[1])
        assert health["warnings"] == [], health
        assert health["backlogs"]["webhook_deliveries"]["failing"] == 0, health
        assert_stops_cleanly(run)


def report_paid_to_number_latency(api: Api, run: MakeRun, orders: int = 8) -> None:
    """Pay a few orders one after another; paid -> number from the database's own clock."""
    [sku] = best_stocked(run.base, 1)
    order_ids = [api.order_paid(sku) for _ in range(orders)]
    for order_id in order_ids:
        api.wait_numbered(order_id)
    with contextlib.closing(sqlite3.connect(ROOT / "var" / "db.sqlite3")) as db:
        rows = [
            db.execute("SELECT created_at, issued_at FROM invoicing_invoice WHERE order_id = ?", [order_id]).fetchone()
            for order_id in order_ids
        ]
    seconds = sorted((datetime.fromisoformat(i) - datetime.fromisoformat(c)).total_seconds() for c, i in rows)
    assert len(seconds) == orders
    line = (
        f"make run (embedded: SQLite + filesystem broker, INVOICE_FAILURE_RATE 0.5): paid -> invoice number over "
        f"{orders} orders: p50 {statistics.median(seconds):.2f} s, max {seconds[-1]:.2f} s"
    )
    print(line)
    (ARTIFACTS / "make-run-latency.txt").write_text(line + "\n")


@pytest.fixture
def make_run_services() -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database and an empty Redis database for the `make run` under test."""
    admin = re.sub(r"/[^/]*$", "/postgres", PG_ADMIN_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{MAKE_RUN_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{MAKE_RUN_DB}"')
    redis_base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15").rsplit("/", 1)[0]
    redis_url = f"{redis_base}/{MAKE_RUN_REDIS_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    yield {"DATABASE_URL": re.sub(r"/[^/]*$", f"/{MAKE_RUN_DB}", PG_ADMIN_URL), "REDIS_URL": redis_url}
    redis.Redis.from_url(redis_url).flushdb()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{MAKE_RUN_DB}" WITH (FORCE)')


def test_make_run_on_postgresql_and_redis_a_shopper_pays_and_gets_an_invoice_number(browser, make_run_services):
    with make_run(name="postgres", extra_env=make_run_services) as run:
        health = run.wait_ready()
        components = health["components"]
        assert components["database"]["backend"] == "postgresql", health
        assert components["broker"]["backend"] == "redis", health
        assert components["cache"]["backend"] == "redis", health
        assert health["backlogs"]["webhook_deliveries"]["url"] == f"{run.base}/api/v1/webhooks/payments/"

        paid = shopper_journey(browser, run, "postgres")
        assert [number for _, number in paid] == ["INV-1", "INV-2"]  # a fresh database: the series starts at 1
        assert_numbered_over_api(Api(run.base), paid)
        assert_stops_cleanly(run)
