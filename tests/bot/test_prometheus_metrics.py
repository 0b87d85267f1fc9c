"""Logs and metrics an operator plugs in (issue 19): JSON log lines with time and the
request id (propagated into the dialogue's lines), and the Prometheus metrics of
bot.prometheus: time to first token, tokens/s, turns, escalations by reason, 429s, the
continuous batcher's queue depth and retrain outcomes."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from fastapi.testclient import TestClient

from bot import logs
from app.server import create_app
from bot.prometheus import REGISTRY
from fixtures.dialogue import make_runtime
from fixtures.fakes import ScriptedGenerator


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def captured():
    """Root-logger lines as the server writes them (JSON), restored afterwards."""
    stream = io.StringIO()
    root = logging.getLogger()
    handler = logs.make_handler("json", stream)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.fixture
def failing(tmp_path):
    """A runtime whose chat model fails after its first word: the dialogue logs a warning."""
    rt = make_runtime(tmp_path, generator=ScriptedGenerator(fail=True), rate_limit_per_minute=0)
    yield rt
    rt.close()


# ---- logs ---------------------------------------------------------------------------------

SHIPPING = {"messages": [{"role": "user", "content": "How long does shipping take?"}]}


@pytest.mark.parametrize("stream", [False, True])
def test_the_request_id_reaches_the_dialogues_log_lines(failing, captured, stream):
    with TestClient(create_app(failing, ui=False)) as client:
        r = client.post("/v1/chat/completions", json={**SHIPPING, "stream": stream},
                        headers={"X-Request-ID": "req-42.a"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-42.a"
    lines = [x for x in captured() if x["logger"] == "bot.dialogue"]
    assert lines, captured()
    line = lines[-1]
    assert line["request_id"] == "req-42.a" and line["level"] == "WARNING"
    assert line["message"].startswith("generation failed, answering from the article")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), line["time"]


def test_a_request_without_a_usable_id_gets_a_new_one(failing):
    with TestClient(create_app(failing, ui=False)) as client:
        made = client.get("/healthz").headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made)
        assert client.get("/healthz").headers["x-request-id"] != made
        for bad in ("two words", "x" * 200, "new\\nline", "<script>"):
            rid = client.get("/healthz", headers={"X-Request-ID": bad}).headers["x-request-id"]
            assert rid != bad and re.fullmatch(r"[0-9a-f]{32}", rid)
        # errors carry it too
        assert client.get("/v1/nothing", headers={"X-Request-ID": "abc"}).headers["x-request-id"] == "abc"


def test_outside_a_request_there_is_no_request_id(captured):
    logging.getLogger("bot.test").warning("hello %s", "there")
    (line,) = [x for x in captured() if x["logger"] == "bot.test"]
    assert line["message"] == "hello there" and "request_id" not in line
    assert set(line) == {"time", "level", "logger", "message"}


def test_exceptions_are_one_json_line(captured):
    try:
        raise ValueError("broken")
    except ValueError:
        logging.getLogger("bot.test").exception("it failed")
    (line,) = [x for x in captured() if x["logger"] == "bot.test"]
    assert line["level"] == "ERROR" and "ValueError: broken" in line["exception"]


def test_plain_stays_the_default_and_names_the_request():
    from core.config import Settings

    assert Settings().log_format == "plain"
    stream = io.StringIO()
    handler = logs.make_handler("plain", stream)
    token = logs.REQUEST_ID.set("rid-7")
    try:
        handler.handle(logging.LogRecord("bot.x", logging.INFO, __file__, 1, "a %s", ("line",), None))
    finally:
        logs.REQUEST_ID.reset(token)
    handler.handle(logging.LogRecord("bot.x", logging.INFO, __file__, 1, "no request", (), None))
    first, second = stream.getvalue().splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO bot\.x \[rid-7\]: a line", first), first
    assert second.endswith("INFO bot.x: no request")
    with pytest.raises(ValueError):
        logs.make_handler("xml")


def test_configure_json_sends_uvicorns_lines_through_the_root_handler():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    access = logging.getLogger("uvicorn.access")
    saved_access = (list(access.handlers), access.propagate, access.level)
    stream = io.StringIO()
    try:
        logs.configure("json", logging.INFO, stream)
        access.setLevel(logging.INFO)  # uvicorn sets it from its log_level (an earlier test's server: warning)
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/healthz", "1.1", 200)
        line = json.loads(stream.getvalue().splitlines()[-1])
        assert line["logger"] == "uvicorn.access" and line["message"] == '127.0.0.1:5 - "GET /healthz HTTP/1.1" 200'
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
        access.handlers[:] = saved_access[0]
        access.propagate = saved_access[1]
        access.setLevel(saved_access[2])


# ---- metrics --------------------------------------------------------------------------------

def test_turns_escalations_and_generation_are_counted(tmp_path):
    rt = make_runtime(tmp_path, rate_limit_per_minute=0)
    before = {"turns": value("supportbot_turns_total", language="en"),
              "asked": value("supportbot_escalations_total", reason="customer_request"),
              "ttft": value("supportbot_chat_time_to_first_token_seconds_count", endpoint="pipeline"),
              "tps": value("supportbot_chat_tokens_per_second_count", endpoint="pipeline"),
              "tokens": value("supportbot_chat_generated_tokens_total", endpoint="pipeline"),
              "plain": value("supportbot_chat_time_to_first_token_seconds_count", endpoint="plain")}
    try:
        with TestClient(create_app(rt, ui=False)) as client:
            body = client.post("/v1/chat/completions", json=SHIPPING).json()
            client.post("/v1/chat/completions", json={"conversation_id": body["conversation_id"], "messages": [
                {"role": "user", "content": "I want to talk to a human"}]})
            client.post("/v1/chat/completions", json={"model": "scripted-chat", "messages": [
                {"role": "user", "content": "hello"}]})
            text = client.get("/metrics").text
    finally:
        rt.close()
    assert value("supportbot_turns_total", language="en") == before["turns"] + 2
    assert value("supportbot_escalations_total", reason="customer_request") == before["asked"] + 1
    assert value("supportbot_chat_time_to_first_token_seconds_count", endpoint="pipeline") == before["ttft"] + 1
    assert value("supportbot_chat_tokens_per_second_count", endpoint="pipeline") == before["tps"] + 1
    # "Based on Shipping times: here is what to do." (44 characters; the fake counts ~3 a token)
    assert value("supportbot_chat_generated_tokens_total", endpoint="pipeline") == before["tokens"] + 15
    assert value("supportbot_chat_time_to_first_token_seconds_count", endpoint="plain") == before["plain"] + 1
    for name in ("supportbot_turns_total", "supportbot_escalations_total", "supportbot_chat_time_to_first_token_seconds",
                 "supportbot_chat_tokens_per_second", "supportbot_chat_batch_queue_depth", "supportbot_rate_limited_total",
                 "supportbot_retrain_runs_total"):
        assert f"# TYPE {name}" in text, name


def test_turns_from_every_way_in_and_no_rollback(tmp_path):
    from storage.repositories import conversations as repo

    rt = make_runtime(tmp_path)
    try:
        d = rt.dialogue
        cid = d.create_conversation()
        zh = value("supportbot_turns_total", language="zh")
        d.turn(cid, "请问怎么下载电子发票？")  # in process, as the UI and the CLI run it
        assert value("supportbot_turns_total", language="zh") == zh + 1
        taken = value("supportbot_escalations_total", reason="agent_takeover")
        d.agent_message(cid, "Hello, Ana here.", agent="ana")
        assert value("supportbot_escalations_total", reason="agent_takeover") == taken + 1
        with pytest.raises(RuntimeError):
            with rt.sessions.begin() as session:
                repo.add_message(session, conversation_id=cid, role="customer", text="lost", language="zh")
                session.flush()
                raise RuntimeError("rolled back")
        assert value("supportbot_turns_total", language="zh") == zh + 1
    finally:
        rt.close()


def test_429s_are_counted_per_route(tmp_path):
    rt = make_runtime(tmp_path, rate_limit_per_minute=6, rate_limit_burst=1)
    before = value("supportbot_rate_limited_total", route="/v1/models")
    try:
        with TestClient(create_app(rt, ui=False)) as client:
            assert [client.get("/v1/models").status_code for _ in range(3)] == [200, 429, 429]
    finally:
        rt.close()
    assert value("supportbot_rate_limited_total", route="/v1/models") == before + 2


def test_retrain_outcomes_are_counted(tmp_path):
    from finetune.retrain import RetrainBusy, retrain, retrain_lock

    rt = make_runtime(tmp_path)
    try:
        where = ("sentiment", "sentiment/zh")  # the two routes of the task
        skipped = {w: value("supportbot_retrain_runs_total", task=w, outcome="skipped") for w in where}
        busy = {w: value("supportbot_retrain_runs_total", task=w, outcome="busy") for w in where}
        outcomes = retrain(rt, tasks=["sentiment"], echo=lambda _line: None)
        assert [o.status for o in outcomes] == ["skipped", "skipped"]  # no feedback yet
        with retrain_lock(rt.engine):
            with pytest.raises(RetrainBusy):
                retrain(rt, tasks=["sentiment"], echo=lambda _line: None)
        for w in where:
            assert value("supportbot_retrain_runs_total", task=w, outcome="skipped") == skipped[w] + 1
            assert value("supportbot_retrain_runs_total", task=w, outcome="busy") == busy[w] + 1
    finally:
        rt.close()


def test_the_batchers_queue_depth(tmp_path):
    from bot.generation import LocalGenerator
    from fixtures import tiny

    path = tiny.build_chat_lm(tmp_path / "chat-lm")
    gen = LocalGenerator.load(str(path), tmp_path / "cache", context_tokens=256, batch_requests=2)
    try:
        batcher = gen.batcher
        depth0, waiting0 = value("supportbot_chat_batch_queue_depth"), value("supportbot_chat_batch_waiting")
        ids = gen.encode([{"role": "user", "content": "where is my order"}])["input_ids"][0].tolist()
        streams = [batcher.stream(ids, max_new_tokens=64, timeout_s=60) for _ in range(2)]
        for s in streams:
            next(s)  # each reply is in the engine now
        assert value("supportbot_chat_batch_queue_depth") == depth0 + 2
        assert value("supportbot_chat_batch_waiting") == waiting0  # two decode at once: nobody waits
        # the accounting of waiting replies: as if the engine decoded one at a time
        batcher._max_requests = 1
        with batcher._lock:
            batcher._count_queue(0)
        assert value("supportbot_chat_batch_waiting") == waiting0 + 1
        for s in streams:
            s.close()  # cancelled: out of the queue
        assert value("supportbot_chat_batch_queue_depth") == depth0
        assert value("supportbot_chat_batch_waiting") == waiting0
    finally:
        gen.close()
