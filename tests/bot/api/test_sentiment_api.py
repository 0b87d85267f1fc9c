"""POST /v1/sentiment and the app around it (API.md), over a real SQLite database."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.server import create_app
from core.config import settings_with
from bot.runtime import Runtime
from bot.sentiment import SentimentService
from fixtures.fakes import KeywordClassifier
from storage.repositories import api_keys
from storage.repositories.predictions import list_predictions

URL = "/v1/sentiment"


@pytest.fixture
def runtime(tmp_path):
    service = SentimentService(KeywordClassifier("en-v1"), {"zh": (zh := KeywordClassifier("zh-v1")), "ja": zh})
    runtime = Runtime.start(settings_with(home=tmp_path / "home"), sentiment=service)
    yield runtime
    runtime.close()


def assert_error(response, status: int, type_: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == type_
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["message"]


# ---- happy path -------------------------------------------------------------------------------------


def test_one_text(client):
    r = client.post(URL, json={"texts": ["I love this phone"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "en-v1+zh-v1"
    (result,) = body["results"]
    assert result["label"] == "positive"
    assert result["language"] == "en"
    assert set(result["scores"]) == {"negative", "neutral", "positive"}
    assert result["score"] == pytest.approx(max(result["scores"].values()))
    assert sum(result["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert "explanation" not in result


def test_256_texts_in_input_order(client):
    texts = [f"{i} " + ("good", "bad", "where is it", "太差了")[i % 4] for i in range(256)]
    r = client.post(URL, json={"texts": texts})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 256
    expected = ["positive", "negative", "neutral", "negative"]
    assert [x["label"] for x in results] == [expected[i % 4] for i in range(256)]
    assert [x["language"] for x in results] == [("en", "en", "en", "zh")[i % 4] for i in range(256)]


def test_explain(client):
    r = client.post(URL, json={"texts": ["I hate it", "很好"], "explain": True})
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert [e["token"] for e in first["explanation"]] == ["I", "hate", "it"]
    assert [e["token"] for e in second["explanation"]] == ["很", "好"]
    assert all(isinstance(e["weight"], float) for e in first["explanation"] + second["explanation"])


def test_5000_characters_is_allowed(client):
    assert client.post(URL, json={"texts": ["a" * 5000]}).status_code == 200


# ---- errors: always {"error": {"type", "message"}}, never a 500 ------------------------------------


def test_257_texts_is_too_large(client):
    message = assert_error(client.post(URL, json={"texts": ["hi"] * 257}), 413, "payload_too_large")
    assert "256" in message


def test_5001_characters_is_too_large(client):
    message = assert_error(client.post(URL, json={"texts": ["ok", "a" * 5001]}), 413, "payload_too_large")
    assert "texts[1]" in message and "5000" in message


def test_limits_come_from_settings(tmp_path):
    service = SentimentService(KeywordClassifier("en-v1"))
    runtime = Runtime.start(settings_with(home=tmp_path, max_texts_per_request=2, max_text_chars=10), sentiment=service)
    try:
        with TestClient(create_app(runtime, ui=False)) as client:
            assert client.post(URL, json={"texts": ["a", "b"]}).status_code == 200
            assert_error(client.post(URL, json={"texts": ["a", "b", "c"]}), 413, "payload_too_large")
            assert_error(client.post(URL, json={"texts": ["a" * 11]}), 413, "payload_too_large")
    finally:
        runtime.close()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"texts": []}, "at least one"),
        ({"texts": ["fine", "   "]}, "texts[1]"),
        ({"texts": ["fine", ""]}, "texts[1]"),
        ({"texts": "hello"}, "texts"),
        ({"texts": [1, 2]}, "texts"),
        ({"texts": ["a", None]}, "texts"),
        ({"texts": ["a"], "explain": "maybe"}, "explain"),
        ({}, "texts"),
        ([], "body"),
        ({"texts": ["a"], "model": "other"}, "model"),  # extra fields are refused
    ],
)
def test_invalid_requests_are_422(client, body, needle):
    message = assert_error(client.post(URL, json=body), 422, "invalid_request")
    assert needle in message


def test_malformed_json_is_400(client):
    r = client.post(URL, content=b'{"texts": ["unterminated"', headers={"content-type": "application/json"})
    assert_error(r, 400, "invalid_json")


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(b"texts=hello", "application/x-www-form-urlencoded"), (b'{"texts": ["hi"]}', "text/plain"), (b"", "application/json")],
)
def test_odd_bodies_are_never_server_errors(client, content, content_type):
    r = client.post(URL, content=content, headers={"content-type": content_type})
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert set(r.json()["error"]) == {"type", "message"}


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_unknown_v1_path_is_json_404(client, method):
    r = client.request(method.upper(), "/v1/no-such-thing")
    message = assert_error(r, 404, "not_found")
    assert "/v1/no-such-thing" in message


def test_unknown_path_outside_v1_is_json_404(client):
    assert_error(client.get("/no-such-page"), 404, "not_found")


def test_wrong_method_on_a_known_endpoint_is_405(client):
    assert_error(client.get(URL), 405, "method_not_allowed")


def test_database_failure_is_503_not_500(client, runtime):
    with runtime.engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE predictions"))
    r = client.post(URL, json={"texts": ["good"]})
    assert_error(r, 503, "database_unavailable")
    assert r.headers.get("retry-after") == "5"


# ---- health, metrics, prediction log ---------------------------------------------------------------


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["models"]["sentiment"] == {"default": "en-v1", "zh": "zh-v1", "ja": "zh-v1"}
    assert body["models"]["chat"] == "not loaded"  # models load on first use


def _sentiment_texts_total(client) -> dict[tuple[str, str], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name == "supportbot_sentiment_texts_total":
                out[(sample.labels["label"], sample.labels["language"])] = sample.value
    return out


def test_metrics_count_classified_texts(client):
    before = _sentiment_texts_total(client)
    assert client.post(URL, json={"texts": ["good", "great", "太差了"]}).status_code == 200
    after = _sentiment_texts_total(client)
    assert after[("positive", "en")] - before.get(("positive", "en"), 0.0) == 2
    assert after[("negative", "zh")] - before.get(("negative", "zh"), 0.0) == 1


def test_predictions_are_logged(client, runtime):
    texts = ["good", "this is bad", "太差了"]
    results = client.post(URL, json={"texts": texts}).json()["results"]
    with runtime.sessions() as session:
        rows = list_predictions(session, task="sentiment")
    assert len(rows) == 3
    assert {r.model_version for r in rows} == {"en-v1+zh-v1"}
    logged = sorted((r.label, round(r.score, 6), r.language, r.text_chars) for r in rows)
    served = sorted((x["label"], round(x["score"], 6), x["language"], len(t)) for x, t in zip(results, texts))
    assert logged == served


def test_failed_calls_are_not_logged(client, runtime):
    client.post(URL, json={"texts": ["good"] * 257})
    client.post(URL, json={"texts": ["good", " "]})
    with runtime.sessions() as session:
        assert list_predictions(session) == []


# ---- auth -------------------------------------------------------------------------------------------


def _create_key(runtime, name: str, scope: str = "customer") -> str:
    with runtime.sessions() as session:
        _row, key = api_keys.create_api_key(session, name=name, scope=scope)
        session.commit()
    return key


def test_open_while_no_key_exists(client):
    assert client.post(URL, json={"texts": ["good"]}).status_code == 200


def test_key_required_once_one_exists(client, runtime):
    key = _create_key(runtime, "ci")
    r = client.post(URL, json={"texts": ["good"]})
    message = assert_error(r, 401, "unauthorized")
    assert "Authorization: Bearer" in message
    assert r.headers["www-authenticate"] == "Bearer"
    assert_error(client.post(URL, json={"texts": ["good"]}, headers={"Authorization": "Bearer sb_wrong"}),
                 401, "unauthorized")
    assert_error(client.post(URL, json={"texts": ["good"]}, headers={"Authorization": f"Basic {key}"}),
                 401, "unauthorized")
    ok = client.post(URL, json={"texts": ["good"]}, headers={"Authorization": f"Bearer {key}"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["results"][0]["label"] == "positive"


def test_auth_comes_before_body_validation(client, runtime):
    _create_key(runtime, "ci")
    assert_error(client.post(URL, json={"texts": []}), 401, "unauthorized")


def test_health_and_metrics_need_no_key(client, runtime):
    _create_key(runtime, "ci")
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_revoked_key_is_refused(client, runtime):
    key = _create_key(runtime, "ci")
    _create_key(runtime, "other")  # keeps auth required after "ci" is revoked
    with runtime.sessions() as session:
        api_keys.revoke_api_key(session, name="ci")
        session.commit()
    assert_error(client.post(URL, json={"texts": ["good"]}, headers={"Authorization": f"Bearer {key}"}),
                 401, "unauthorized")


def test_keys_file(tmp_path):
    key = "sb_filekey_0123456789"
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"# name:scope:sha256\nops:normal:{hashlib.sha256(key.encode()).hexdigest()}\n")
    runtime = Runtime.start(settings_with(home=tmp_path, api_keys_file=keys_file),
                            sentiment=SentimentService(KeywordClassifier("en-v1")))
    try:
        with TestClient(create_app(runtime, ui=False)) as client:
            assert_error(client.post(URL, json={"texts": ["good"]}), 401, "unauthorized")
            r = client.post(URL, json={"texts": ["good"]}, headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200, r.text
    finally:
        runtime.close()
