"""Access control (issue 8): per-caller rate limits (429 + Retry-After), the refusal to
serve a non-loopback address while no key exists (through the real CLI), and no secret
in any log record."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.server import create_app
from bot.ratelimit import RateLimitedError, RateLimiter
from fixtures.dialogue import make_runtime
from storage.repositories import api_keys

REPO = Path(__file__).resolve().parents[3]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_token_bucket_refills_at_the_configured_rate():
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    for _ in range(3):
        limiter.hit("a")
    with pytest.raises(RateLimitedError) as exc:
        limiter.hit("a")
    assert exc.value.retry_after == "1" and 0 < exc.value.retry_after_s <= 1
    limiter.hit("b")  # another caller has its own bucket
    clock.now += 1.0  # one token back per second at 60/min
    limiter.hit("a")
    with pytest.raises(RateLimitedError):
        limiter.hit("a")
    clock.now += 100  # never more than the burst
    for _ in range(3):
        limiter.hit("a")
    with pytest.raises(RateLimitedError):
        limiter.hit("a")


def test_zero_turns_limiting_off():
    limiter = RateLimiter(per_minute=0, burst=1)
    for _ in range(50):
        limiter.hit("a")


@pytest.fixture
def runtime(tmp_path):
    rt = make_runtime(tmp_path, rate_limit_per_minute=6, rate_limit_burst=3)
    yield rt
    rt.close()


def _keys(runtime, *names):
    with runtime.sessions.begin() as session:
        return [api_keys.create_api_key(session, name=n)[1] for n in names]


def test_per_key_limit_answers_429_with_retry_after(runtime):
    first, second = _keys(runtime, "first", "second")
    client = TestClient(create_app(runtime, ui=False))
    auth = {"Authorization": f"Bearer {first}"}
    codes = [client.get("/v1/models", headers=auth).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = client.get("/v1/models", headers=auth)
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"  # OpenAI's shape on /v1/models
    assert r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1
    assert "per minute" in r.json()["error"]["message"]
    # another key is not slowed down by the first one's traffic
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {second}"}).status_code == 200
    # bad keys are 401 (not 429), and health stays reachable
    assert client.get("/v1/models", headers={"Authorization": "Bearer sb_wrong"}).status_code == 401
    assert client.get("/healthz").status_code == 200


def test_without_keys_the_client_address_is_limited(runtime):
    client = TestClient(create_app(runtime, ui=False))
    codes = [client.post("/v1/sentiment", json={"texts": ["hi"]}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_limits_can_be_raised_for_benchmarks(tmp_path):
    rt = make_runtime(tmp_path, rate_limit_per_minute=0)
    client = TestClient(create_app(rt, ui=False))
    assert {client.get("/v1/models").status_code for _ in range(150)} == {200}
    rt.close()


def _cli(*args, home: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env.update(SUPPORTBOT_HOME=str(home), SUPPORTBOT_UI="false", SUPPORTBOT_DEMO_KB="false")
    return subprocess.run([sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_serve_refuses_a_public_address_while_no_key_exists(tmp_path):
    home = tmp_path / "home"
    r = _cli("serve", "--host", "0.0.0.0", "--port", "1", home=home)
    assert r.returncode != 0
    assert "refusing to listen on 0.0.0.0 while no API key exists" in r.stderr
    assert "supportbot keys create" in r.stderr
    # a revoked key does not count either
    assert _cli("keys", "create", "old", home=home).returncode == 0
    assert _cli("keys", "revoke", "old", home=home).returncode == 0
    r = _cli("serve", "--host", "0.0.0.0", "--port", "1", home=home)
    assert r.returncode != 0 and "refusing to listen" in r.stderr


def test_the_bind_check_passes_once_a_key_exists_and_for_loopback(tmp_path):
    from app.server import refuse_open_public_bind
    from core.errors import SupportbotError

    rt = make_runtime(tmp_path, host="0.0.0.0")
    with pytest.raises(SupportbotError):
        refuse_open_public_bind(rt.settings, rt)
    refuse_open_public_bind(rt.settings.model_copy(update={"host": "127.0.0.1"}), rt)
    refuse_open_public_bind(rt.settings.model_copy(update={"host": "::1"}), rt)
    _keys(rt, "ops")
    refuse_open_public_bind(rt.settings, rt)  # no exception
    rt.close()


def test_keys_never_reach_a_log_record(tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)  # every logger, every level
    from app.cli import main

    home = tmp_path / "home"
    assert main(["keys", "create", "ops", "--admin", "--home", str(home)]) == 0
    out = capsys.readouterr()
    key = next(w for w in out.out.split() if w.startswith("sb_"))
    rt = make_runtime(home, rate_limit_per_minute=6, rate_limit_burst=2)
    client = TestClient(create_app(rt, ui=False))
    wrong = key[:-4] + "XXXX"
    for k in (key, key, key, wrong):
        h = {"Authorization": f"Bearer {k}"}
        client.get("/v1/models", headers=h)
        client.post("/v1/sentiment", json={"texts": ["good"]}, headers=h)
        client.post("/v1/conversations", json={"channel": "web"}, headers=h)
    assert main(["keys", "list", "--home", str(home)]) == 0
    rt.close()
    out = capsys.readouterr()
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records, "the calls above should have logged something"
    for secret in (key, wrong, key[10:30]):
        assert secret not in logged
        assert secret not in out.err and secret not in out.out
