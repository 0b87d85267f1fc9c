"""What the benchmarks and evaluations (scripts/bench_*.py, eval_answers.py) share: a free
loopback port, a `supportbot serve` subprocess with a throwaway home, waiting for it to
answer /healthz, the CPU's name, and the timing helpers."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc, url: str, timeout_s: float) -> str | None:
    """Poll `url` (a /healthz) until it answers 200: None then, else why not (the process
    exited, or the time ran out). The caller stops the process and reports."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with {proc.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return None
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return f"did not start in {timeout_s:.0f} s"


class ServeProcess:
    """`supportbot serve --no-ui` on a free loopback port with a throwaway home (rate limit
    off, the converted models shared from ./var/models unless SUPPORTBOT_MODEL_CACHE says
    otherwise); `env`: more SUPPORTBOT_* settings. SystemExit naming the log if it does not
    come up."""

    def __init__(self, log_path: Path, *, prefix: str = "supportbot-", env: dict | None = None,
                 timeout_s: float = 900):
        self.port = free_port()
        self.home = tempfile.mkdtemp(prefix=prefix)
        full = {**os.environ, "SUPPORTBOT_HOME": self.home, "SUPPORTBOT_HOST": "127.0.0.1",
                "SUPPORTBOT_PORT": str(self.port), "SUPPORTBOT_RATE_LIMIT_PER_MINUTE": "0",
                "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
        full.setdefault("SUPPORTBOT_MODEL_CACHE", str(ROOT / "var" / "models"))  # converted once, shared
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = log_path.open("w")
        exe = Path(sys.executable).with_name("supportbot")
        command = [str(exe), "serve", "--no-ui"] if exe.exists() else [sys.executable, "-m", "app.cli", "serve", "--no-ui"]
        self.proc = subprocess.Popen(command, cwd=ROOT, env=full, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        failure = wait_healthy(self.proc, self.url + "/healthz", timeout_s)
        if failure:
            self.close()
            raise SystemExit(f"the server {failure}; its log: {log_path}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))]
