"""Cold start (issue 20): `serve` logs how many seconds after the process started its models
were ready (and how much of that was converting packaged models once), and when it sent
its first sentiment answer and its first chat reply (app/startup.py)."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app import startup
from app.server import create_app
from core.model_refs import _convert_once
from fixtures import tiny
from fixtures.dialogue import make_runtime

REPO = Path(__file__).resolve().parents[2]
SECONDS = r"(\d+\.\d) s after the process started"


def test_the_clock_starts_with_the_process_not_the_import():
    code = "import time; time.sleep(1.5); from app.startup import process_age_s; print(process_age_s())"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 1.5 <= float(out.stdout) < 60


def _convert_fake(cache: Path, name: str) -> None:
    """A conversion through core.model_refs' own once-only path, so its .complete file is
    the real one."""
    def build(work: Path):
        (work / "model").mkdir()
        return work / "model", "a test"

    _convert_once(name, cache / name, about="no time", reinstall="nothing", build=build)


def test_the_cache_tells_which_models_were_converted_and_how_long_it_took(tmp_path):
    cache = tmp_path / "models"
    assert startup.converted_models(cache) == {}  # no cache yet
    _convert_fake(cache, "me5-small")
    _convert_fake(cache / "llama_cpp", "gguf-e388c63d9b0b58da-q8_0")  # merged GGUFs: one folder deeper
    (cache / "half-done").mkdir()  # no .complete: not a converted model
    assert startup.converted_models(cache) == {"me5-small": 0.0, "llama_cpp/gguf-e388c63d9b0b58da-q8_0": 0.0}

    new = {"me5-small": 14.0, "smollm2-135m": 38.0}
    assert startup.ready_line(71.44, new, cache, 0) == (
        f"models ready 71.4 s after the process started (52 s of it converting packaged models into {cache}, "
        "once: me5-small 14 s, smollm2-135m 38 s)")
    assert startup.ready_line(9.8, {}, cache, 2) == (
        f"models ready 9.8 s after the process started (no conversion: the converted models were already in {cache})")
    assert startup.ready_line(3.0, {}, cache, 0) == "models ready 3.0 s after the process started (nothing to convert)"


def test_ready_first_answer_and_first_reply_are_logged_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="app.startup")
    runtime = make_runtime(tmp_path / "home")
    _convert_fake(runtime.settings.model_cache_dir, "me5-small")  # converted by an earlier start
    try:
        startup.load_models(runtime)
        with TestClient(create_app(runtime, ui=False)) as client:
            assert client.post("/v1/sentiment", json={"texts": []}).status_code == 422  # no answer: not counted
            assert "first sentiment" not in caplog.text
            for _ in range(2):
                assert client.post("/v1/sentiment", json={"texts": ["great", "很好"]}).status_code == 200
                r = client.post("/v1/chat/completions", json={"model": "supportbot", "messages": [
                    {"role": "user", "content": "How long does shipping take?"}]})
                assert r.status_code == 200, r.text
    finally:
        runtime.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "app.startup"]
    assert len(lines) == 3, lines
    assert re.fullmatch(f"models ready {SECONDS} \\(no conversion: the converted models were already in .*\\)",
                        lines[0])
    assert re.fullmatch(f"first sentiment answer sent {SECONDS}", lines[1])
    assert re.fullmatch(f"first chat reply sent {SECONDS}", lines[2])
    ready, answer, reply = (float(re.search(SECONDS, line).group(1)) for line in lines)
    assert 0 < ready <= answer <= reply


@pytest.mark.slow
def test_serve_logs_its_start(tmp_path):
    """The real `supportbot serve` (tiny models, the packaged English encoder: nothing to convert): the three lines on its log."""
    clf = tiny.build_bert_classifier(tmp_path / "clf")
    chat = tiny.build_chat_lm(tmp_path / "chat")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env.update(SUPPORTBOT_SENTIMENT_MODEL_ZH="none", SUPPORTBOT_INTENT_MODEL="none", SUPPORTBOT_DEMO_KB="false",
               SUPPORTBOT_EMBEDDING_MODEL_MULTILINGUAL="none",
               SUPPORTBOT_CHAT_CONTEXT_TOKENS="256", SUPPORTBOT_CHAT_MAX_TOKENS="8",
               SUPPORTBOT_CHAT_GENERATE_LANGUAGES="en", SUPPORTBOT_RATE_LIMIT_PER_MINUTE="0")
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--no-ui", "--port", str(port),
                                 "--home", str(tmp_path / "home"), "--sentiment-model", str(clf),
                                 "--chat-model", str(chat)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(proc, f"http://127.0.0.1:{port}", log_path)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                assert client.post("/v1/sentiment", json={"texts": ["great"]}).status_code == 200
                r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hello"}]})
                assert r.status_code == 200, r.text
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    text = log_path.read_text()
    assert re.search(f"app.startup: models ready {SECONDS} \\(nothing to convert\\)", text), text[-3000:]
    assert re.search(f"app.startup.*: first sentiment answer sent {SECONDS}", text), text[-3000:]
    assert re.search(f"app.startup.*: first chat reply sent {SECONDS}", text), text[-3000:]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(proc, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + 240
    while True:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        assert time.monotonic() < deadline, log_path.read_text()[-3000:]
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
