"""Instructions per order of the shopper flow in one process, counted by valgrind's callgrind
(`make bench`, after the CPU per request): the same requests as bench/request_cpu.py
(cart, checkout, pay, the provider's webhook, one poll), run in a child process under
`valgrind --tool=callgrind --instr-atstart=no`; instrumentation is switched on
(`callgrind_control -i on`) only around the measured orders, after Django's start and a
warm-up.

Why a second figure: CPU seconds depend on the machine (a 2-core VM here ran the same tree
at 15.6 ms per order one night and 28 ms the next) and drift by a fifth within minutes on a
shared host. An instruction count of the same code and inputs is the same on any x86_64
machine and on every run, so it compares trees across machines and rounds; the CPU figures
say what the machine of the run made of it.

The child speaks a line protocol on stdin/stdout: it prints READY after the warm-up and
waits for GO, runs the orders, prints DONE and waits for END before it exits.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Instructions:
    orders: int
    total: int

    @property
    def per_order_m(self) -> float:
        return self.total / self.orders / 1e6


def _expect(child: subprocess.Popen[str], word: str) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == word:
            return
    raise RuntimeError(f"the instruction-count child exited before {word} (code {child.wait()})")


def _say(child: subprocess.Popen[str], word: str) -> None:
    assert child.stdin is not None
    child.stdin.write(word + "\n")
    child.stdin.flush()


def _control(pid: int, switch: str) -> None:
    subprocess.run(["callgrind_control", "-i", switch, str(pid)], check=True, capture_output=True, timeout=60)


def bench_instructions(*, orders: int, warmup: int, env: dict[str, str]) -> Instructions | None:
    """Instructions per order under callgrind; None when valgrind is not installed."""
    if orders <= 0 or not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        return None
    with tempfile.TemporaryDirectory(prefix="commerce-callgrind-") as directory:
        out = Path(directory) / "callgrind.out"
        child = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
             sys.executable, __file__, "--child", str(orders), str(warmup)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            _expect(child, "READY")
            _control(child.pid, "on")
            _say(child, "GO")
            _expect(child, "DONE")
            _control(child.pid, "off")
            _say(child, "END")
            if child.wait(timeout=120) != 0:
                raise RuntimeError(f"the instruction-count child failed (code {child.returncode})")
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
        return Instructions(orders=orders, total=int(totals[0].split()[1]))


def render_instructions(result: Instructions | None) -> str:
    if result is None:
        return "Instructions per order: not counted (valgrind is not installed)."
    return (
        f"Instructions per order in one process (valgrind callgrind, {result.orders} orders after a warm-up, "
        f"the same requests as above): **{result.per_order_m:.1f} M**. The same on every run and machine "
        "for the same tree (bench/instructions.py)."
    )


def _child(orders: int, warmup: int) -> None:
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    from request_cpu import bench_request_cpu  # bench/request_cpu.py, next to this file

    def ready() -> None:
        print("READY", flush=True)
        assert sys.stdin.readline().strip() == "GO"

    # One call, the same clients: their first requests (each loads the middleware stack, and
    # WhiteNoise scans STATIC_ROOT, once per process in production) stay in the warm-up.
    bench_request_cpu(orders=orders, warmup=max(warmup, 1), after_warmup=ready)
    print("DONE", flush=True)
    assert sys.stdin.readline().strip() == "END"


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    _child(int(sys.argv[2]), int(sys.argv[3]))
