"""/v1/chat/completions and /v1/models: OpenAI-compatible, checked with the official
`openai` client over a real socket, and the remote backend against a second server."""

from __future__ import annotations

import json

import openai
import pytest

from app.server import create_app
from bot.generation import GenerationParams, RemoteGenerator
from fixtures.dialogue import make_runtime
from fixtures.fakes import ScriptedGenerator
from fixtures.server import serve


@pytest.fixture
def runtime(tmp_path):
    rt = make_runtime(tmp_path / "a")
    yield rt
    rt.close()


def sse_events(response) -> list:
    events = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            payload = line[len("data: "):]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def test_models_lists_the_pipeline_and_the_chat_model(client):
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["supportbot", "scripted-chat"]


def test_a_completion_starts_a_stored_conversation_with_the_extras(client):
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "How long does shipping take?"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Based on Shipping times: here is what to do."}
    assert body["sources"][0]["id"] == "en-shipping" and body["escalate"] is False
    assert body["sentiment"]["label"] == "neutral" and body["usage"]["completion_tokens"] > 0
    conv = client.get(f"/v1/conversations/{body['conversation_id']}").json()
    assert [m["role"] for m in conv["messages"]] == ["customer", "bot"]
    assert conv["messages"][1]["id"] == body["message_id"]  # the id feedback refers to
    # continuing it
    again = client.post("/v1/chat/completions", json={"conversation_id": body["conversation_id"],
                                                      "messages": [{"role": "user", "content": "I want to talk to a human"}]})
    assert again.json()["escalate"] is True and again.json()["escalation_reason"] == "customer_request"


def test_streaming_sends_chunks_then_the_extras_then_done(client):
    r = client.post("/v1/chat/completions", json={"stream": True, "messages": [{"role": "user", "content": "请问怎么下载电子发票？"}]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r)
    assert events[-1] == "[DONE]"
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text.startswith("您可以在我的订单的发票页面下载电子发票")
    final = events[-2]
    assert final["choices"][0]["finish_reason"] == "stop" and final["sources"][0]["id"] == "zh-invoice"


@pytest.mark.parametrize("body, status, kind, param", [
    ({"messages": []}, 400, "invalid_request_error", "messages"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, 400, "invalid_request_error", "messages[0]"),
    ({"messages": [{"role": "user", "content": "   "}]}, 400, "invalid_request_error", "messages[0]"),
    ({"messages": [{"role": "user", "content": "x" * 5001}]}, 413, "invalid_request_error", "messages[0].content"),
    ({"messages": [{"role": "user", "content": "hi"}], "conversation_id": "nope"}, 404, "not_found_error",
     "conversation_id"),
    ({"messages": [{"role": "user", "content": "hi"}], "model": "gpt-9"}, 404, "not_found_error", "model"),
    ({"messages": [{"role": "user", "content": "hi"}], "temperature": 5}, 400, "invalid_request_error", "temperature"),
    ({"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]}, 400,
     "invalid_request_error", "stop"),
])
def test_bad_requests_get_openai_shaped_errors(client, body, status, kind, param):
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == kind and error["param"] == param and error["message"] and error["code"]


def test_the_openai_client_works_streaming_and_not(runtime):
    with serve(create_app(runtime, ui=False)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
        assert [m.id for m in client.models.list()] == ["supportbot", "scripted-chat"]
        done = client.chat.completions.create(model="supportbot",
                                              messages=[{"role": "user", "content": "How do I reset my password?"}])
        assert done.choices[0].message.content == "Based on Resetting your password: here is what to do."
        extras = done.model_extra
        assert extras["sources"][0]["id"] == "en-password" and extras["conversation_id"]
        stream = client.chat.completions.create(model="supportbot", stream=True,
                                                messages=[{"role": "user", "content": "How long does shipping take?"}])
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "Based on Shipping times: here is what to do."
        # the plain model: a completion over the given messages, not stored
        plain = client.chat.completions.create(model="scripted-chat", max_tokens=2,
                                               messages=[{"role": "user", "content": "hello"}])
        assert plain.choices[0].message.content == "Based on" and plain.choices[0].finish_reason == "length"


def test_the_remote_backend_generates_on_a_second_supportbot(tmp_path):
    """Instance B serves its chat model; instance A's dialogue generates through it."""
    b = make_runtime(tmp_path / "b", generator=ScriptedGenerator("b-chat", reply="Reply written by B."))
    try:
        with serve(create_app(b, ui=False)) as b_url:
            remote = RemoteGenerator(b_url + "/v1", "b-chat", api_key="k", timeout_s=10)
            pieces = list(remote.stream([{"role": "user", "content": "hi"}], GenerationParams(max_tokens=50)))
            assert "".join(pieces) == "Reply written by B."
            assert "".join(remote.stream([{"role": "user", "content": "hi"}],
                                         GenerationParams(stop=[" by"]))) == "Reply written"
            a = make_runtime(tmp_path / "a", generator=remote)
            try:
                d = a.dialogue
                cid = d.create_conversation()
                result = d.turn(cid, "How long does shipping take?")
                assert result.reply.text == "Reply written by B."
                assert result.model_version == f"b-chat@{b_url}/v1"
                # B got A's grounded prompt: the article was in the system message
                assert "Standard shipping takes 3-5 business days" in b.generator.calls[-1][0]["content"]
            finally:
                a.close()
    finally:
        b.close()


def test_a_remote_backend_that_is_down_degrades_to_the_article(tmp_path):
    remote = RemoteGenerator("http://127.0.0.1:9/v1", "nothing", timeout_s=2)  # port 9: discard, nothing listens
    a = make_runtime(tmp_path, generator=remote)
    try:
        d = a.dialogue
        result = d.turn(d.create_conversation(), "How long does shipping take?")
        assert result.reply.text.startswith("Standard shipping takes 3-5 business days")
        assert result.model_version == "supportbot-retrieval"
    finally:
        a.close()


def test_a_streamed_turn_needs_no_second_pooled_connection(tmp_path):
    """The request's own session (the key check) hands its connection back before the turn
    opens its sessions: with a pool of one, a streamed turn must not wait for a second
    connection (64 concurrent streamed turns exhausted the pool that way, bench_load.py)."""
    import sqlalchemy as sa
    from fastapi.testclient import TestClient

    from storage.db import make_engine, make_session_factory

    rt = make_runtime(tmp_path / "pool")
    try:
        rt.engine.dispose()
        rt.engine = make_engine(rt.settings.resolved_database_url, pool_size=1, max_overflow=0, pool_timeout=2,
                                poolclass=sa.pool.QueuePool)
        rt.sessions = make_session_factory(rt.engine)
        with TestClient(create_app(rt, ui=False)) as c:
            r = c.post("/v1/chat/completions", json={"stream": True, "messages": [
                {"role": "user", "content": "How long does shipping take?"}]})
            events = sse_events(r)
        assert r.status_code == 200
        assert not [e for e in events if isinstance(e, dict) and "error" in e], events
        assert events[-2]["sources"][0]["id"] == "en-shipping" and events[-1] == "[DONE]"
    finally:
        rt.close()
