"""Several workers (issue 19): the importable ASGI app (app.server:app) and
`supportbot serve --workers N`, with tiny models so that each worker loads quickly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.server import create_app
from fixtures import tiny
from fixtures.dialogue import make_runtime

REPO = Path(__file__).resolve().parents[3]


def test_importing_the_asgi_module_loads_nothing():
    out = subprocess.run([sys.executable, "-c", "import sys, app.server as a; "
                          "print(a.app._app is None, 'torch' in sys.modules, 'gradio' in sys.modules)"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "False", "False"]


def test_the_lazy_app_builds_once_on_lifespan_and_serves(tmp_path):
    from app.server import LazyApp

    runtime = make_runtime(tmp_path)
    built = []

    def build():
        built.append(1)
        return create_app(runtime, ui=False)

    lazy = LazyApp(build)
    try:
        with TestClient(lazy) as client:  # lifespan startup builds it
            assert built == [1]
            assert client.get("/healthz").json()["status"] == "ok"
            assert client.post("/v1/sentiment", json={"texts": ["great"]}).status_code == 200
        assert built == [1]
    finally:
        runtime.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.slow
def test_serve_with_two_workers(tmp_path):
    clf = tiny.build_bert_classifier(tmp_path / "clf")
    chat = tiny.build_chat_lm(tmp_path / "chat")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env.update(SUPPORTBOT_SENTIMENT_MODEL_ZH="none", SUPPORTBOT_INTENT_MODEL="none", SUPPORTBOT_DEMO_KB="false",
               SUPPORTBOT_CHAT_CONTEXT_TOKENS="256", SUPPORTBOT_LOG_FORMAT="json", SUPPORTBOT_RATE_LIMIT_PER_MINUTE="0")
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--workers", "2", "--port", str(port),
                             "--home", str(tmp_path / "home"), "--sentiment-model", str(clf), "--chat-model", str(chat)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert len(_children(proc.pid)) >= 2  # the workers (and uvicorn's own helpers, if any)
        for i in range(6):  # new connections: the kernel spreads them over the workers
            with httpx.Client(base_url=url, timeout=60) as client:
                r = client.post("/v1/sentiment", json={"texts": [f"great {i}"]}, headers={"X-Request-ID": f"w-{i}"})
                assert r.status_code == 200 and r.headers["x-request-id"] == f"w-{i}", r.text
        with httpx.Client(base_url=url, timeout=60) as client:
            r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hello"}]})
            assert r.status_code == 200, r.text
            assert client.get("/").status_code == 404  # API only: the UI needs one process
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert "with 2 workers" in text
    assert text.count('"message": "loading models..."') == 2, text[-3000:]  # each worker built its own runtime
