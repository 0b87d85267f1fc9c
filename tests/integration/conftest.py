"""A real `supportbot serve` process on a free loopback port, with the shipped models."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
# Converted packaged models are shared with `make run` (./var/models): conversion is slow.
MODEL_CACHE = REPO / "var" / "models"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def product_env(home: Path, **extra: str) -> dict:
    # No SUPPORTBOT_* or HF_* from the test run: the product must set up offline mode itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPPORTBOT_", "HF_", "TRANSFORMERS_"))}
    env.update(SUPPORTBOT_HOME=str(home), SUPPORTBOT_MODEL_CACHE=str(MODEL_CACHE), **extra)
    return env


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("server-home")
    port = free_port()
    log = open(home / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=product_env(home), stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # first run converts the packaged models
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{(home / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("server did not become healthy in 600 s")
            time.sleep(1)
        yield {"url": base, "home": home, "proc": proc}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
