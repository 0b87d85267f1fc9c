"""OpenAI's conventions on /v1/chat/completions and /v1/models (issue 19): usage in streams
when asked, finish_reason "length", usage counting the prompt the model saw, and errors
shaped, typed and coded as OpenAI's, while the other endpoints keep API.md's shape.

Checked with two independent clients over a real socket: the official `openai` client,
and httpx with httpx-sse (an SSE parser of its own, no OpenAI code)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from fastapi.testclient import TestClient
from httpx_sse import connect_sse

from app.server import create_app
from fixtures.dialogue import make_runtime
from fixtures.fakes import ScriptedGenerator
from fixtures.server import serve
from storage.repositories import api_keys

SHIPPING = [{"role": "user", "content": "How long does shipping take?"}]
OPENAI_ERROR_KEYS = {"message", "type", "param", "code"}


@pytest.fixture
def runtime(tmp_path):
    rt = make_runtime(tmp_path / "a", rate_limit_per_minute=0)
    yield rt
    rt.close()


def events_of(response) -> list:
    out = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            payload = line[len("data: "):]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


# ---- usage in streams ---------------------------------------------------------------------

def test_include_usage_adds_a_last_chunk_with_usage_and_empty_choices(client, runtime):
    r = client.post("/v1/chat/completions", json={"messages": SHIPPING, "stream": True,
                                                  "stream_options": {"include_usage": True}})
    events = events_of(r)
    assert events[-1] == "[DONE]"
    last = events[-2]
    assert last["choices"] == [] and last["object"] == "chat.completion.chunk"
    usage = last["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] > 0
    # the model's own count of what it was given: the grounded prompt, not the client's one line
    assert usage["prompt_tokens"] == runtime.generator.count_tokens(runtime.generator.calls[-1])
    assert all(e["usage"] is None for e in events[:-2]), "OpenAI sends usage: null on the other chunks"
    assert events[-3]["choices"][0]["finish_reason"] == "stop" and events[-3]["sources"][0]["id"] == "en-shipping"


def test_without_include_usage_the_chunks_carry_no_usage(client):
    for options in (None, {"include_usage": False}):
        body = {"messages": SHIPPING, "stream": True, **({"stream_options": options} if options else {})}
        events = events_of(client.post("/v1/chat/completions", json=body))
        assert all("usage" not in e for e in events[:-1]) and events[-2]["choices"][0]["finish_reason"] == "stop"


# ---- usage counts the prompt the model saw ----------------------------------------------------

def test_prompt_tokens_are_the_models_count_of_the_messages_it_was_given(client, runtime):
    body = client.post("/v1/chat/completions", json={"messages": SHIPPING}).json()
    seen = runtime.generator.calls[-1]
    assert seen[0]["role"] == "system" and "Standard shipping takes 3-5 business days" in seen[0]["content"]
    assert body["usage"]["prompt_tokens"] == runtime.generator.count_tokens(seen)
    assert body["usage"]["prompt_tokens"] > runtime.generator.count_tokens(SHIPPING)  # not just the client's text


def test_without_the_model_the_prompt_is_the_customers_text(client, runtime):
    calls = len(runtime.generator.calls)
    text = "请问怎么下载电子发票？"  # Chinese: answered with the article's sentences (generate_languages=en)
    body = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": text}]}).json()
    assert len(runtime.generator.calls) == calls
    assert body["usage"]["prompt_tokens"] == round(len(text) / 3)  # the fake has no tokenizer: ~3 characters a token
    assert body["choices"][0]["finish_reason"] == "stop"


# ---- finish_reason "length" ----------------------------------------------------------------

def test_finish_reason_is_length_when_the_token_limit_cut_the_reply(client, runtime):
    cut = {"messages": SHIPPING, "max_tokens": 3}
    body = client.post("/v1/chat/completions", json=cut).json()
    assert body["choices"][0]["message"]["content"] == "Based on Shipping"
    assert body["choices"][0]["finish_reason"] == "length"
    events = events_of(client.post("/v1/chat/completions", json={**cut, "stream": True}))
    finals = [e for e in events[:-1] if e["choices"] and e["choices"][0]["finish_reason"]]
    assert [e["choices"][0]["finish_reason"] for e in finals] == ["length"]
    # the plain model, streamed
    plain = {"model": runtime.generator.name, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2,
             "stream": True, "stream_options": {"include_usage": True}}
    events = events_of(client.post("/v1/chat/completions", json=plain))
    assert events[-3]["choices"][0]["finish_reason"] == "length"
    assert events[-2]["choices"] == [] and events[-2]["usage"]["prompt_tokens"] == runtime.generator.count_tokens(
        runtime.generator.calls[-1])
    # a reply the limit did not reach ends with stop
    body = client.post("/v1/chat/completions", json={"messages": SHIPPING, "max_tokens": 200}).json()
    assert body["choices"][0]["finish_reason"] == "stop"


def test_an_article_answer_is_never_length(client):
    body = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "请问怎么下载电子发票？"}],
                                                     "max_tokens": 1}).json()
    assert body["choices"][0]["finish_reason"] == "stop"  # the model did not write it


# ---- errors ---------------------------------------------------------------------------------

def openai_error(r, status: int, kind: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert set(error) == OPENAI_ERROR_KEYS and error["type"] == kind and error["message"], error
    return error


def test_malformed_requests_are_400_invalid_request_error_with_param_and_code(client):
    e = openai_error(client.post("/v1/chat/completions", content=b'{"messages": [',
                                 headers={"content-type": "application/json"}), 400, "invalid_request_error")
    assert e["code"] == "invalid_json"
    e = openai_error(client.post("/v1/chat/completions", json={"model": "supportbot"}), 400, "invalid_request_error")
    assert e["param"] == "messages" and e["code"] == "missing_required_parameter"
    e = openai_error(client.post("/v1/chat/completions", json={"messages": [{"role": "robot", "content": "x"}]}), 400,
                     "invalid_request_error")
    assert e["param"] == "messages[0].role" and e["code"] == "invalid_value"
    e = openai_error(client.post("/v1/chat/completions", json={"messages": SHIPPING, "max_tokens": "many"}), 400,
                     "invalid_request_error")
    assert e["param"] == "max_tokens" and e["code"] == "invalid_type"
    e = openai_error(client.post("/v1/chat/completions", json={"messages": SHIPPING, "model": "gpt-9"}), 404,
                     "not_found_error")
    assert e["param"] == "model" and e["code"] == "model_not_found"
    e = openai_error(client.get("/v1/chat/completions"), 405, "invalid_request_error")
    assert e["code"] == "method_not_allowed"


def test_the_other_endpoints_keep_their_own_error_shape(client):
    for r in (client.post("/v1/sentiment", json={"texts": "good"}),
              client.post("/v1/conversations", json={"channel": 5})):
        assert r.status_code == 422 and r.json() == {"error": {"type": "invalid_request",
                                                               "message": r.json()["error"]["message"]}}
    r = client.post("/v1/sentiment", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400 and set(r.json()["error"]) == {"type", "message"}
    assert r.json()["error"]["type"] == "invalid_json"
    assert set(client.get("/v1/nothing-here").json()["error"]) == {"type", "message"}


def test_an_error_after_the_stream_started_is_in_openai_shape(tmp_path):
    rt = make_runtime(tmp_path, generator=ScriptedGenerator(fail=True))
    try:
        with TestClient(create_app(rt, ui=False), raise_server_exceptions=False) as c:
            events = events_of(c.post("/v1/chat/completions", json={
                "model": "scripted-chat", "stream": True, "messages": [{"role": "user", "content": "hello there"}]}))
        errors = [e["error"] for e in events if isinstance(e, dict) and "error" in e]
        assert len(errors) == 1 and set(errors[0]) == OPENAI_ERROR_KEYS
        assert errors[0]["type"] == "server_error" and errors[0]["code"] == "generation_failed"
        assert events[-1] == "[DONE]"
    finally:
        rt.close()


def test_the_openapi_document_describes_openai_errors_there(client):
    doc = client.get("/openapi.json").json()
    chat = doc["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert "422" not in chat and chat["400"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/OpenAIErrorPublic")
    assert doc["paths"]["/v1/sentiment"]["post"]["responses"]["422"]["content"]["application/json"]["schema"][
        "$ref"].endswith("/ErrorPublic")
    assert "stream_options" in json.dumps(doc["components"]["schemas"])


# ---- two clients over a real socket ----------------------------------------------------------

def _keys(runtime, **scopes) -> dict:
    with runtime.sessions.begin() as session:
        return {name: api_keys.create_api_key(session, name=name, scope=scope)[1] for name, scope in scopes.items()}


def test_the_official_openai_client(runtime):
    with serve(create_app(runtime, ui=False)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        # usage in a stream, when asked
        chunks = list(client.chat.completions.create(model="supportbot", messages=SHIPPING, stream=True,
                                                     stream_options={"include_usage": True}))
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
        assert chunks[-1].usage.prompt_tokens == runtime.generator.count_tokens(runtime.generator.calls[-1])
        assert all(c.usage is None for c in chunks[:-1])
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
            "Based on Shipping times: here is what to do.")
        # finish_reason length, streamed and not
        cut = client.chat.completions.create(model="supportbot", messages=SHIPPING, max_tokens=3)
        assert cut.choices[0].finish_reason == "length" and cut.usage.prompt_tokens > 10
        streamed = list(client.chat.completions.create(model="supportbot", messages=SHIPPING, max_tokens=3,
                                                       stream=True))
        assert [c.choices[0].finish_reason for c in streamed if c.choices and c.choices[0].finish_reason] == ["length"]
        # errors become the client's typed exceptions with code and param
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(model="supportbot", messages=[{"role": "assistant", "content": "hi"}])
        assert bad.value.status_code == 400 and bad.value.type == "invalid_request_error"
        assert bad.value.param == "messages[0]" and bad.value.code == "invalid_request"
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(model="supportbot", messages=SHIPPING, temperature=7)
        assert bad.value.param == "temperature" and bad.value.code == "invalid_value"
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(model="gpt-9", messages=SHIPPING)
        assert missing.value.code == "model_not_found" and missing.value.param == "model"
        # keys: 401 and 403 as OpenAI's authentication and permission errors
        keys = _keys(runtime, shop="customer")
        with pytest.raises(openai.AuthenticationError) as unauthorized:
            client.models.list()
        assert unauthorized.value.type == "authentication_error" and unauthorized.value.code == "invalid_api_key"
        shop = openai.OpenAI(base_url=url + "/v1", api_key=keys["shop"], max_retries=0)
        assert [m.id for m in shop.models.list()] == ["supportbot"]
        with pytest.raises(openai.PermissionDeniedError) as denied:
            shop.chat.completions.create(model="scripted-chat", messages=SHIPPING)
        assert denied.value.type == "permission_error" and denied.value.param == "model"


def test_the_openai_client_sees_429_as_a_rate_limit_error(tmp_path):
    rt = make_runtime(tmp_path, rate_limit_per_minute=6, rate_limit_burst=2)
    try:
        with serve(create_app(rt, ui=False)) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            client.models.list()
            client.models.list()
            with pytest.raises(openai.RateLimitError) as limited:
                client.models.list()
            assert limited.value.type == "rate_limit_error" and limited.value.code == "rate_limited"
            assert int(limited.value.response.headers["Retry-After"]) >= 1
    finally:
        rt.close()


def test_httpx_sse_as_a_second_client(runtime):
    with serve(create_app(runtime, ui=False)) as url, httpx.Client(base_url=url, timeout=30) as http:
        body = {"model": "supportbot", "messages": SHIPPING, "stream": True, "max_tokens": 3,
                "stream_options": {"include_usage": True}}
        with connect_sse(http, "POST", "/v1/chat/completions", json=body) as source:
            assert source.response.headers["x-request-id"]
            data = [sse.data for sse in source.iter_sse()]
        assert data[-1] == "[DONE]"
        chunks = [json.loads(d) for d in data[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        assert text == "Based on Shipping"
        assert chunks[-2]["choices"][0]["finish_reason"] == "length"
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == round(len(text) / 3)
        error = http.post("/v1/chat/completions", json={"messages": []})
        assert error.status_code == 400 and error.json()["error"]["type"] == "invalid_request_error"
        assert error.json()["error"]["param"] == "messages"
        models = http.get("/v1/models").json()
        assert models["object"] == "list" and models["data"][0]["id"] == "supportbot"
