"""HTTP load benchmark of the whole shopper flow (`make bench`, after the numbering runs).

The production-shaped processes, started from docker-compose.yml's own commands: nginx with
config/nginx.conf in front (`proxy`, its upstreams moved to loopback ports), gunicorn with
config/gunicorn.py (DEBUG off, the bench's own secrets) for shoppers (`web`), for the order
pages' invoice-block polls (`polls`) and for the provider's webhooks (`webhooks`), the three
Celery workers by queue (`celery`, `documents`, `provider`) and beat, each with compose's
`cpu_shares` as its CPU weight and its own compose environment, on the bench's PostgreSQL
database and Redis db. Only 127.0.0.1 is ever contacted.

Shoppers sign in over HTTP (the sign-in page: a session, as a browser has) and each runs a
closed loop over the requests the web must accept for an order: add to cart, checkout
(Idempotency-Key), pay with `pm_card_success` (Idempotency-Key). The order page the shopper
leaves open then polls the invoice block exactly as static/js/shop.js does (after 2 s, then
x1.5 up to 30 s, `If-None-Match` with the last ETag) until the number shows; the shopper
meanwhile places the next order. So the web's acceptance rate and the background's rate of
finishing orders are measured apart: a shopper that waited for its number before buying
again would hide a growing backlog behind a slower loop.

Each concurrency step runs a warm-up, then a measured window; in the window:
- accepted: orders whose pay request answered 201, per second;
- completed: orders of the step whose invoice number became visible (committed) in the
  window, per second; a watcher reads PostgreSQL every 50 ms, so pay -> number is timed from
  the pay answer to the number's commit within 50 ms (not at the poll's 2 s granularity);
- the invoice-block polls' latency (200s and 304s);
- web CPU: the web tier's CPU time (nginx and the three gunicorn pools, masters and
  workers; utime + stime from /proc) over the window, per accepted order (cart, checkout,
  pay, the provider's webhook (one: a card settles at once), the polls).
After the window the shoppers stop, every accepted order must get its number (bounded wait),
and the documents queue is drained (bounded) before the next step.
"""

import contextlib
import heapq
import math
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

PRODUCTS = 20
ADDRESS = {"name": "Bench Shopper", "line1": "1 Road", "city": "Paris", "postal_code": "75001", "country": "FR"}
PASSWORD = "bench-shopper-pass"  # noqa: S105 (a throwaway account in the bench's own database)
# static/js/shop.js: the invoice block polls after 2 s, then x1.5, up to every 30 s.
POLL_FIRST_S, POLL_FACTOR, POLL_MAX_S = 2.0, 1.5, 30.0
# All shoppers come from 127.0.0.1, so the per-IP throttles would cap the whole load at one
# client's rate: lifted for the bench (the throttle checks still run, Redis round-trips included).
THROTTLE_RATES = ",".join(
    f"{scope}=1000000/min"
    for scope in ("login", "login_ip", "checkout", "checkout_ip", "payments", "payments_ip", "webhooks", "webhooks_ip")
)
SERVICES = ("proxy", "web", "webhooks", "polls", "worker", "documents", "provider", "beat")
# The web tier: nginx and the three gunicorn pools (shoppers, the provider's webhooks, polls).
WEB_SERVICES = ("proxy", "web", "webhooks", "polls")
GUNICORN_SERVICES = ("web", "webhooks", "polls")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


# --- The production-shaped processes ---------------------------------------------------------


def compose_command(service: str) -> list[str]:
    """The service's command from docker-compose.yml (what production runs), as argv."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"][service]["command"]
    if command[:2] == ["sh", "-c"]:
        command = shlex.split(command[2].split("exec ", 1)[1])
    return list(command)


def compose_env_overrides(service: str) -> dict[str, str]:
    """What the service's `environment` sets apart from the shared app environment (x-app):
    the bench keeps its own addresses and secrets and adds these (e.g. polls' health checks)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    shared = compose["x-app"]["environment"]
    own = compose["services"][service].get("environment") or {}
    return {key: str(value) for key, value in own.items() if shared.get(key) != value}


def compose_cpu_shares(service: str) -> int:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return int(compose["services"][service].get("cpu_shares", 1024))


def cpu_weight_apply(pid: int, shares: int) -> None:
    """compose's `cpu_shares` for a process group started here: each service runs in its own
    session, i.e. its own scheduler autogroup, so its weight is the autogroup's nice value
    (weight 1024 / 1.25 ** nice: shares 256 -> nice 6, weight 272)."""
    if shares == 1024:
        return
    nice = max(-20, min(19, round(math.log(1024 / shares, 1.25))))
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError as exc:  # no autogroups in this kernel: the service runs at full weight
        log(f"flow: cpu_shares {shares} not applied to {pid} ({exc})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


def proc_children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


class Stack:
    """proxy (nginx), web, polls and webhooks (gunicorn), worker, documents, provider, beat: each
    its own process group."""

    def __init__(self, *, env: dict[str, str], log_dir: Path) -> None:
        self.ports = {service: free_port() for service in ("proxy", *GUNICORN_SERVICES)}
        self.port = self.ports["web"]
        self.base = f"http://127.0.0.1:{self.ports['proxy']}"  # shoppers come through the proxy
        self.log_dir = log_dir
        self.env = dict(env)
        self.env.update(
            {
                "PORT": str(self.port),
                "SITE_URL": self.base,
                # As compose: the provider posts to the webhooks service, shoppers use the proxy.
                "PAYMENT_WEBHOOK_URL": f"http://127.0.0.1:{self.ports['webhooks']}/api/v1/webhooks/payments/",
                "NUM_PROXIES": "1",
                "ALLOWED_HOSTS": "127.0.0.1",
                # Plain HTTP on 127.0.0.1, as docker-compose.yml's demo stack does.
                "SECURE_SSL_REDIRECT": "false",
                "SECURE_COOKIES": "false",
                "THROTTLE_RATES": THROTTLE_RATES,
                "AXES_ENABLED": "true",
                # Mails are built (PDF attached) and kept in memory: no SMTP server here.
                "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
                "EMAIL_URL": "memorymail://",
                "LOG_LEVEL": "INFO",
            }
        )
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started_cpu: dict[int, float] = {}

    def _argv(self, service: str) -> list[str]:
        if service == "proxy":
            return self._nginx_argv()
        argv = compose_command(service)
        if argv[0] == "gunicorn":
            # config/gunicorn.py binds 0.0.0.0:PORT; the bench listens on loopback only.
            return [str(VENV_BIN / "gunicorn"), *argv[1:], "--bind", f"127.0.0.1:{self.ports[service]}"]
        assert argv[0] == "celery", argv
        if "--schedule" in argv:
            argv[argv.index("--schedule") + 1] = str(self.log_dir / "beat-schedule")
        return [sys.executable, "-m", "celery", *argv[1:]]

    def _start_service(self, service: str) -> None:
        env = {**self.env, **(compose_env_overrides(service) if service != "proxy" else {})}
        if service != "beat":  # as compose: one metrics directory per service
            metrics = self.log_dir / "metrics" / service
            metrics.mkdir(parents=True, exist_ok=True)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
        with (self.log_dir / f"{service}.log").open("ab") as out:
            self.procs[service] = subprocess.Popen(
                self._argv(service), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        cpu_weight_apply(self.procs[service].pid, compose_cpu_shares(service))

    def kill_and_restart(self, service: str) -> None:
        """SIGKILL the service's whole process group (no warm shutdown, nothing acknowledged)
        and start it again at once, as compose's `restart: unless-stopped` does."""
        proc = self.procs[service]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self._start_service(service)

    def start(self) -> "Stack":
        for service in SERVICES:
            self._start_service(service)
        deadline = time.monotonic() + 90
        for service in ("worker", "documents", "provider"):
            while b" ready." not in (self.log_dir / f"{service}.log").read_bytes():
                self._check_alive(deadline)
                time.sleep(0.2)
        for port in self.ports.values():
            while True:
                try:
                    if requests.get(f"http://127.0.0.1:{port}/health/live/", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                self._check_alive(deadline)
                time.sleep(0.2)
        # Every gunicorn worker imported the app (preload is off): wait for all of them.
        for service in GUNICORN_SERVICES:
            while len(proc_children(self.procs[service].pid)) < self._gunicorn_workers(service):
                self._check_alive(deadline)
                time.sleep(0.2)
        return self

    def _nginx_argv(self) -> list[str]:
        """compose's proxy: config/nginx.conf itself, its upstreams and listen address moved to
        the bench's loopback ports and its scratch files into the log directory."""
        nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
        if nginx is None:
            raise RuntimeError("make bench runs compose's proxy: nginx is needed (apt-get install nginx)")
        conf = (ROOT / "config" / "nginx.conf").read_text()
        replaced = {
            "listen 8000;": f"listen 127.0.0.1:{self.ports['proxy']};",
            "server web:8000 resolve;": f"server 127.0.0.1:{self.ports['web']};",
            "server polls:8000 resolve;": f"server 127.0.0.1:{self.ports['polls']};",
            "/tmp/nginx": str(self.log_dir / "nginx"),  # noqa: S108 (the text replaced, not a path used)
        }
        for old, new in replaced.items():
            assert old in conf, f"config/nginx.conf has no {old!r}"
            conf = conf.replace(old, new)
        path = self.log_dir / "nginx.conf"
        path.write_text(conf)
        return [nginx, "-e", "stderr", "-p", str(self.log_dir), "-c", str(path), "-g", "daemon off;"]

    def _gunicorn_workers(self, service: str) -> int:
        argv = compose_command(service)
        if "--workers" in argv:
            return int(argv[argv.index("--workers") + 1])
        # as config/gunicorn.py
        return int(self.env.get("WEB_CONCURRENCY") or max(2, (os.cpu_count() or 1) * 2 + 1))

    def _check_alive(self, deadline: float) -> None:
        for service, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{service} exited with {proc.returncode}; see {self.log_dir / service}.log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the stack did not become ready; logs in {self.log_dir}")

    def service_cpu_seconds(self) -> dict[str, float]:
        """CPU time of each service: its main process and its children (prefork pools)."""
        return {
            service: sum(proc_cpu_seconds(pid) for pid in [proc.pid, *proc_children(proc.pid)])
            for service, proc in self.procs.items()
        }

    def web_pids(self) -> list[int]:
        """Both gunicorn pools: web CPU per order counts the webhooks service too."""
        masters = [self.procs[service].pid for service in WEB_SERVICES]
        return [pid for master in masters for pid in (master, *proc_children(master))]

    def web_cpu_seconds(self) -> float:
        return sum(proc_cpu_seconds(pid) for pid in self.web_pids())

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # graceful: gunicorn drains, Celery warm shutdown
        deadline = time.monotonic() + 40
        for service, proc in self.procs.items():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log(f"{service} did not stop in time: SIGKILL")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


# --- Shoppers --------------------------------------------------------------------------------


def fixtures_create(*, shoppers: int) -> list[str]:
    """Products with ample stock and `shoppers` accounts (in the bench's database). Returns SKUs."""
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from inventory.models import Product, Stock

    skus = [f"FLOW-{i}" for i in range(PRODUCTS)]
    for i, sku in enumerate(skus):
        product, created = Product.objects.get_or_create(
            sku=sku, defaults={"name": f"Flow product {i}", "price": Decimal("10.00") + i, "currency": "EUR"}
        )
        if created:
            Stock.objects.create(product=product, on_hand=10_000_000)
    password = make_password(PASSWORD)  # hashed once: the web checks it once per sign-in
    user_model = get_user_model()
    for i in range(shoppers):
        user_model.objects.get_or_create(
            username=f"flow-shopper-{i}", defaults={"password": password, "email": f"flow-{i}@example.com"}
        )
    return skus


class Shopper:
    def __init__(self, *, base: str, index: int) -> None:
        self.base = base
        self.index = index
        self.http = requests.Session()

    def sign_in(self) -> "Shopper":
        page = self.http.get(f"{self.base}/accounts/login/", timeout=30)
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert match, f"no CSRF token on the sign-in page ({page.status_code})"
        answer = self.http.post(
            f"{self.base}/accounts/login/",
            data={"username": f"flow-shopper-{self.index}", "password": PASSWORD, "csrfmiddlewaretoken": match[1]},
            headers={"Referer": f"{self.base}/accounts/login/"},
            allow_redirects=False,
            timeout=30,
        )
        assert answer.status_code == 302, f"sign-in answered {answer.status_code}"
        return self

    @property
    def cookies(self) -> dict[str, str]:
        return {name: value for name, value in self.http.cookies.items() if value is not None}

    def post(self, path: str, body: dict[str, Any], *, key: bool = False) -> requests.Response:
        headers = {"X-CSRFToken": self.http.cookies.get("csrftoken") or ""}  # session auth, as the shop's pages
        if key:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        return self.http.post(f"{self.base}{path}", json=body, headers=headers, timeout=60)


@dataclass
class OrderRecord:
    order_id: int
    started: float  # the cart request was sent
    paid: float  # the pay request answered 201 (accepted)
    numbered: float | None = None  # the number was visible in PostgreSQL (watcher)
    invoiced: float | None = None  # the payment-succeeded webhook placed the order (invoice created_at)
    attempts: int = 0  # numbering attempts of its invoice
    seen: float | None = None  # a poll of the invoice block showed it


@dataclass
class Poll:
    started: float
    seconds: float
    status: int


@dataclass
class Step:
    concurrency: int
    window_s: float
    orders: list[OrderRecord] = field(default_factory=list)
    polls: list[Poll] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests_s: dict[str, list[float]] = field(default_factory=lambda: {"cart": [], "checkout": [], "pay": []})
    window: tuple[float, float] = (0.0, 0.0)
    web_cpu_s: float = 0.0
    service_cpu_s: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0  # share of all cores busy in the window, whoever used them
    client_cpu_s: float = 0.0
    unfinished: int = 0
    documents_backlog: int = 0
    documents_drain_s: float = 0.0

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] += 1

    def in_window(self, t: float | None) -> bool:
        return t is not None and self.window[0] <= t < self.window[1]

    @property
    def accepted(self) -> list[OrderRecord]:
        return [o for o in self.orders if self.in_window(o.paid)]

    @property
    def accepted_per_s(self) -> float:
        return len(self.accepted) / self.window_s

    @property
    def completed_per_s(self) -> float:
        return sum(1 for o in self.orders if self.in_window(o.numbered)) / self.window_s

    @property
    def pay_to_number(self) -> list[float]:
        return [o.numbered - o.paid for o in self.accepted if o.numbered is not None]

    @property
    def pay_to_paid(self) -> list[float]:
        """Pay answer -> the provider's succeeded webhook applied (the invoice created)."""
        return [o.invoiced - o.paid for o in self.accepted if o.invoiced is not None]

    @property
    def paid_to_number(self) -> list[float]:
        return [o.numbered - o.invoiced for o in self.accepted if o.numbered is not None and o.invoiced is not None]

    @property
    def window_polls(self) -> list[Poll]:
        return [p for p in self.polls if self.in_window(p.started)]

    @property
    def cpu_per_order_ms(self) -> float:
        return 1000 * self.web_cpu_s / max(len(self.accepted), 1)

    @property
    def flow_s(self) -> list[float]:
        return [o.paid - o.started for o in self.accepted]


class NumberWatcher(threading.Thread):
    """Marks each accepted order's `numbered` time when its invoice number is committed."""

    def __init__(self, *, database_url: str) -> None:
        super().__init__(daemon=True, name="number-watcher")
        self.conn = psycopg.connect(database_url, autocommit=True)
        self.pending: dict[int, OrderRecord] = {}
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def watch(self, record: OrderRecord) -> None:
        with self.lock:
            self.pending[record.order_id] = record

    def outstanding(self) -> int:
        with self.lock:
            return len(self.pending)

    def run(self) -> None:
        while not self.halt.wait(0.05):
            with self.lock:
                ids = list(self.pending)
            if not ids:
                continue
            rows = self.conn.execute(
                "SELECT order_id FROM invoicing_invoice WHERE order_id = ANY(%s) AND number IS NOT NULL", [ids]
            ).fetchall()
            now = time.time()
            with self.lock:
                for (order_id,) in rows:
                    record = self.pending.pop(order_id, None)
                    if record is not None:
                        record.numbered = now

    def stop(self) -> None:
        self.halt.set()
        self.join(5)
        self.conn.close()


class BlockPollers:
    """The order pages left open: each polls its invoice block like shop.js until the number
    shows. A few threads serve a schedule of due polls."""

    NUMBER = re.compile(r'data-testid="invoice-number">([^<]+)<')

    def __init__(self, *, base: str, step: Step, threads: int) -> None:
        self.base = base
        self.step = step
        self.heap: list[tuple[float, int, OrderRecord, dict[str, str], float, str]] = []
        self.cond = threading.Condition()
        self.halt = False
        self.seq = 0
        self.threads = [threading.Thread(target=self._run, daemon=True, name=f"poller-{i}") for i in range(threads)]
        for thread in self.threads:
            thread.start()

    def follow(self, record: OrderRecord, cookies: dict[str, str]) -> None:
        self._schedule(record.paid + POLL_FIRST_S, record, cookies, POLL_FIRST_S, "")

    def _schedule(self, due: float, record: OrderRecord, cookies: dict[str, str], delay: float, etag: str) -> None:
        with self.cond:
            self.seq += 1
            heapq.heappush(self.heap, (due, self.seq, record, cookies, delay, etag))
            self.cond.notify()

    def _run(self) -> None:
        http = requests.Session()
        while True:
            with self.cond:
                while not self.halt and (not self.heap or self.heap[0][0] > time.time()):
                    self.cond.wait(timeout=(self.heap[0][0] - time.time()) if self.heap else None)
                if self.halt:
                    return
                _, _, record, cookies, delay, etag = heapq.heappop(self.heap)
            headers = {"X-Requested-With": "fetch", **({"If-None-Match": etag} if etag else {})}
            started = time.time()
            try:
                answer = http.get(
                    f"{self.base}/orders/{record.order_id}/invoice-block/", headers=headers, cookies=cookies, timeout=30
                )
            except requests.RequestException as exc:
                self.step.error(f"poll {type(exc).__name__}")
                self._schedule(time.time() + delay, record, cookies, delay, etag)
                continue
            ended = time.time()
            self.step.polls.append(Poll(started=started, seconds=ended - started, status=answer.status_code))
            if answer.status_code == 200:
                match = self.NUMBER.search(answer.text)
                if match and match[1].strip() != "Pending":
                    record.seen = ended
                    continue
                etag = answer.headers.get("ETag", "")
            elif answer.status_code != 304:
                self.step.error(f"poll {answer.status_code}")
            following = min(delay * POLL_FACTOR, POLL_MAX_S)
            self._schedule(ended + delay, record, cookies, following, etag)

    def stop(self) -> None:
        with self.cond:
            self.halt = True
            self.cond.notify_all()
        for thread in self.threads:
            thread.join(35)


def shopper_loop(
    *,
    shopper: Shopper,
    skus: list[str],
    step: Step,
    halt: threading.Event,
    on_paid: Callable[[OrderRecord, Shopper], None],
    max_orders: int,
) -> None:
    rng = random.Random(shopper.index)
    while not halt.is_set() and len(step.orders) < max_orders:
        started = time.time()
        try:
            answer = shopper.post("/api/v1/cart/items/", {"sku": rng.choice(skus), "quantity": 1})
            step.requests_s["cart"].append(time.time() - started)
            if answer.status_code not in (200, 201):
                raise _Refused("cart", answer)
            t = time.time()
            answer = shopper.post("/api/v1/checkout/", {"shipping_address": ADDRESS}, key=True)
            step.requests_s["checkout"].append(time.time() - t)
            if answer.status_code != 201:
                raise _Refused("checkout", answer)
            order_id = int(answer.json()["id"])
            t = time.time()
            answer = shopper.post(
                f"/api/v1/orders/{order_id}/payments/", {"payment_method": "pm_card_success"}, key=True
            )
            paid = time.time()
            step.requests_s["pay"].append(paid - t)
            if answer.status_code != 201:
                raise _Refused("pay", answer)
        except _Refused as refused:
            step.error(f"{refused.what} {refused.answer.status_code}")
            shopper.http.delete(
                f"{shopper.base}/api/v1/cart/", headers={"X-CSRFToken": shopper.cookies.get("csrftoken", "")}
            )
            halt.wait(0.5)
            continue
        except requests.RequestException as exc:
            step.error(f"flow {type(exc).__name__}")
            halt.wait(0.5)
            continue
        record = OrderRecord(order_id=order_id, started=started, paid=paid)
        step.orders.append(record)
        on_paid(record, shopper)


class _Refused(Exception):
    def __init__(self, what: str, answer: requests.Response) -> None:
        super().__init__(f"{what} answered {answer.status_code}: {answer.text[:200]}")
        self.what = what
        self.answer = answer


def documents_backlog(redis_url: str) -> int:
    return int(redis.Redis.from_url(redis_url).llen("documents"))


def run_step(
    *,
    stack: Stack,
    shoppers: list[Shopper],
    skus: list[str],
    database_url: str,
    redis_url: str,
    warmup_s: float,
    window_s: float,
    max_orders: int,
    drain_s: float,
) -> Step:
    step = Step(concurrency=len(shoppers), window_s=window_s)
    watcher = NumberWatcher(database_url=database_url)
    watcher.start()
    pollers = BlockPollers(base=stack.base, step=step, threads=max(2, min(8, len(shoppers) // 2)))

    def on_paid(record: OrderRecord, shopper: Shopper) -> None:
        watcher.watch(record)
        pollers.follow(record, shopper.cookies)

    halt = threading.Event()
    threads = [
        threading.Thread(
            target=shopper_loop,
            kwargs={
                "shopper": s,
                "skus": skus,
                "step": step,
                "halt": halt,
                "on_paid": on_paid,
                "max_orders": max_orders,
            },
            daemon=True,
            name=f"shopper-{s.index}",
        )
        for s in shoppers
    ]
    log(f"flow c{step.concurrency}: {warmup_s:g} s warm-up, then a {window_s:g} s window")
    begin = time.time()
    for thread in threads:
        thread.start()
    time.sleep(max(begin + warmup_s - time.time(), 0))
    machine0 = machine_cpu_seconds()
    services0, cpu0, client0, w0 = (
        stack.service_cpu_seconds(),
        stack.web_cpu_seconds(),
        sum(os.times()[:2]),
        time.time(),
    )
    time.sleep(max(w0 + window_s - time.time(), 0))
    services1, cpu1, client1, w1 = (
        stack.service_cpu_seconds(),
        stack.web_cpu_seconds(),
        sum(os.times()[:2]),
        time.time(),
    )
    machine1 = machine_cpu_seconds()
    step.service_cpu_s = {name: services1[name] - services0[name] for name in services1}
    step.machine_busy = (machine1[0] - machine0[0]) / max(machine1[1] - machine0[1], 1e-9)
    step.window, step.window_s = (w0, w1), w1 - w0
    step.web_cpu_s, step.client_cpu_s = cpu1 - cpu0, client1 - client0
    step.documents_backlog = documents_backlog(redis_url)
    halt.set()
    for thread in threads:
        thread.join(90)
    deadline = time.monotonic() + drain_s
    while watcher.outstanding() and time.monotonic() < deadline:
        time.sleep(0.2)
    step.unfinished = watcher.outstanding()
    pollers.stop()
    by_order = {o.order_id: o for o in step.orders}
    for order_id, created, attempts in watcher.conn.execute(
        "SELECT order_id, extract(epoch FROM created_at), attempts FROM invoicing_invoice WHERE order_id = ANY(%s)",
        [list(by_order)],
    ).fetchall():
        by_order[order_id].invoiced, by_order[order_id].attempts = float(created), int(attempts)
    watcher.stop()
    started = time.monotonic()
    while documents_backlog(redis_url) and time.monotonic() - started < drain_s:
        time.sleep(0.5)
    step.documents_drain_s = time.monotonic() - started
    log(
        f"flow c{step.concurrency}: accepted {step.accepted_per_s:.1f}/s, completed {step.completed_per_s:.1f}/s, "
        f"pay->number p50 {pct(step.pay_to_number, 50):.2f} s p99 {pct(step.pay_to_number, 99):.2f} s, "
        f"(pay->paid p50 {pct(step.pay_to_paid, 50):.2f} p99 {pct(step.pay_to_paid, 99):.2f}, paid->number p50 "
        f"{pct(step.paid_to_number, 50):.2f} p99 {pct(step.paid_to_number, 99):.2f}), "
        f"poll p95 {1000 * pct([p.seconds for p in step.window_polls], 95):.0f} ms, "
        f"web CPU {step.cpu_per_order_ms:.0f} ms/order, errors {dict(step.errors) or 0}, unfinished {step.unfinished}"
    )
    log(f"flow c{step.concurrency}: {cpu_line(step)}")
    return step


@dataclass
class FlowResult:
    steps: list[Step]
    failure_rate: float
    logs: Path

    def step(self, concurrency: int) -> Step:
        return next(s for s in self.steps if s.concurrency == concurrency)


def bench_flow(
    *,
    env: dict[str, str],
    database_url: str,
    redis_url: str,
    log_dir: Path,
    levels: list[int],
    warmup_s: float,
    window_s: float,
    max_orders: int,
    drain_s: float,
    failure_rate: float,
) -> FlowResult:
    skus = fixtures_create(shoppers=max(levels))
    from django.db import connections

    connections.close_all()  # the bench process stays out of the stack's way
    stack_env = {**env, "INVOICE_FAILURE_RATE": str(failure_rate)}
    log(
        "flow: starting web, webhooks, worker, documents, provider and beat (docker-compose.yml's commands); "
        f"logs {log_dir}"
    )
    stack = Stack(env=stack_env, log_dir=log_dir)
    steps: list[Step] = []
    try:
        stack.start()  # inside the try: a stack that never became ready is stopped too
        log(f"flow: {max(levels)} shoppers sign in at {stack.base}")
        shoppers = [Shopper(base=stack.base, index=i).sign_in() for i in range(max(levels))]
        for level in levels:
            steps.append(
                run_step(
                    stack=stack,
                    shoppers=shoppers[:level],
                    skus=skus,
                    database_url=database_url,
                    redis_url=redis_url,
                    warmup_s=warmup_s,
                    window_s=window_s,
                    max_orders=max_orders,
                    drain_s=drain_s,
                )
            )
    finally:
        stack.stop()
    return FlowResult(steps=steps, failure_rate=failure_rate, logs=log_dir)


def render_flow(result: FlowResult) -> str:
    lines = [
        "| concurrency | accepted /s | completed (paid and numbered) /s | ratio | pay -> number p50 / p99 / max "
        "| of which pay -> paid (webhook) p50 / p99 | paid -> number p50 / p99 | numbering attempts mean "
        "| flow (cart+checkout+pay) p50 / p95 | invoice-block poll p50 / p95 (304 share) | web CPU per order "
        "| errors | not numbered after the drain |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in result.steps:
        polls = [p.seconds for p in s.window_polls]
        not_modified = sum(1 for p in s.window_polls if p.status == 304)
        ratio = s.completed_per_s / s.accepted_per_s if s.accepted_per_s else float("nan")
        lines.append(
            f"| {s.concurrency} | {s.accepted_per_s:.1f} | {s.completed_per_s:.1f} | {ratio:.2f} "
            f"| {pct(s.pay_to_number, 50):.2f} s / {pct(s.pay_to_number, 99):.2f} s / "
            f"{max(s.pay_to_number, default=float('nan')):.2f} s "
            f"| {pct(s.pay_to_paid, 50):.2f} s / {pct(s.pay_to_paid, 99):.2f} s "
            f"| {pct(s.paid_to_number, 50):.2f} s / {pct(s.paid_to_number, 99):.2f} s "
            f"| {sum(o.attempts for o in s.accepted) / max(len(s.accepted), 1):.2f} "
            f"| {1000 * pct(s.flow_s, 50):.0f} / {1000 * pct(s.flow_s, 95):.0f} ms "
            f"| {1000 * pct(polls, 50):.0f} / {1000 * pct(polls, 95):.0f} ms ({not_modified}/{len(polls)}) "
            f"| {s.cpu_per_order_ms:.0f} ms | {sum(s.errors.values())} | {s.unfinished} |"
        )
    lines.append("")
    for s in result.steps:
        lines.append(f"- c{s.concurrency}: {cpu_line(s)}; documents queue at the window's end {s.documents_backlog}")
    return "\n".join(lines)


def cpu_line(step: Step) -> str:
    """Where the 2 cores went in the window: each service's CPU (cores busy on average)."""
    parts = [f"{name} {cpu / step.window_s:.2f}" for name, cpu in step.service_cpu_s.items()]
    parts.append(f"load client {step.client_cpu_s / step.window_s:.2f}")
    cores = os.cpu_count() or 1
    return (
        "CPU cores used: "
        + ", ".join(parts)
        + f" (PostgreSQL and Redis not counted); the machine's {cores} cores {100 * step.machine_busy:.0f}% busy"
    )


def flow_summary(result: FlowResult) -> tuple[Step, Step]:
    """The reference step (8 in the full run: the middle level) and the highest."""
    levels = sorted(s.concurrency for s in result.steps)
    reference = result.step(8) if 8 in levels else result.step(levels[len(levels) // 2])
    return reference, result.step(levels[-1])


NOTES = """How to read them:

- **Processes** are docker-compose.yml's commands (bench/flow.py reads them from the file):
  nginx with config/nginx.conf (`proxy`: the invoice-block poll to `polls`, the rest to
  `web`), gunicorn with config/gunicorn.py (gthread, DEBUG off, JSON request logs) for
  shoppers (`web`, 2 x CPUs + 1 processes x 4 threads), the polls (`polls`, 1 x 4) and
  the provider's webhooks (`webhooks`, 2 x 4, posted to directly),
  `worker -Q celery`, `documents -Q documents`, `provider -Q provider`
  and beat, with Prometheus multiprocess files per service and compose's CPU weights (proxy
  and polls 8192, webhooks 2048, documents 256, the rest 1024: the autogroup nice value of
  each process group). The per-IP throttles are lifted (every shopper comes from
  127.0.0.1; the checks still run).
- **Shoppers** are signed-in sessions, one thread each, in a closed loop of add to cart,
  checkout and pay (`pm_card_success`, an Idempotency-Key on checkout and pay). The order
  page they leave open polls the invoice block as static/js/shop.js does (after 2 s, then
  x1.5, `If-None-Match`) until the number shows, while the shopper buys again: accepted
  and completed rates are measured apart, so a backlog shows as completed < accepted.
- **Accepted**: pay answered 201 within the window. **Completed**: the order's invoice
  number became visible in PostgreSQL within the window (a watcher reads every 50 ms);
  pay -> number runs from the pay answer to that moment, so it includes the simulated
  provider's webhook (`pm_card_success` settles at once: one `payment.succeeded`, as a
  real provider sends for a card), the payment-succeeded flow and numbering with its retries.
- **Web CPU** is the utime + stime of the web tier (nginx and the three gunicorn pools,
  masters and workers) over the window, divided by the accepted orders: cart, checkout,
  pay, the webhook and the polls.
- The client runs on the same 2 cores as everything else (its own CPU is in the logs).
"""
