"""End to end over HTTP against the real server with the shipped default models."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.slow

# The client's examples (issue: foundation) plus a customer-service complaint.
EXPECTED = {
    "这部电影很无聊。": ("negative", "zh"),
    "这部电影的剧情非常好。": ("positive", "zh"),
    "Where is my order?": ("neutral", "en"),
    "The refund took forever": ("negative", "en"),
    "请问可以开发票吗？": ("neutral", "zh"),
    "Thank you so much, the replacement works perfectly!": ("positive", "en"),
}


def test_sentiment_examples(server):
    texts = list(EXPECTED)
    r = httpx.post(server["url"] + "/v1/sentiment", json={"texts": texts}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"]
    got = {t: (res["label"], res["language"]) for t, res in zip(texts, body["results"])}
    assert got == EXPECTED
    for res in body["results"]:
        assert set(res["scores"]) == {"negative", "neutral", "positive"}
        assert abs(sum(res["scores"].values()) - 1) < 1e-3
        assert res["score"] == max(res["scores"].values())


def test_batch_limits_over_http(server):
    url = server["url"] + "/v1/sentiment"
    ok = httpx.post(url, json={"texts": ["fine"] * 256}, timeout=300)
    assert ok.status_code == 200 and len(ok.json()["results"]) == 256
    too_many = httpx.post(url, json={"texts": ["fine"] * 257}, timeout=60)
    assert too_many.status_code == 413 and too_many.json()["error"]["type"] == "payload_too_large"
    too_long = httpx.post(url, json={"texts": ["x" * 5001]}, timeout=60)
    assert too_long.status_code == 413
    bad = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}, timeout=60)
    assert bad.status_code == 400 and "error" in bad.json()


def test_health_metrics_and_ui(server):
    health = httpx.get(server["url"] + "/healthz", timeout=30).json()
    assert health["status"] == "ok" and health["database"] == "ok"
    assert "sentiment" in health["models"]
    assert "sentiment-zh-me5" in str(health["models"]["sentiment"])  # the Chinese route: me5-small (issue 16)
    metrics = httpx.get(server["url"] + "/metrics", timeout=30).text
    assert "supportbot_http_requests_total" in metrics
    page = httpx.get(server["url"] + "/", timeout=30)
    assert page.status_code == 200 and "gradio" in page.text.lower()
    missing = httpx.get(server["url"] + "/v1/no-such-thing", timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"


def test_database_is_sqlite_under_home_in_wal_mode(server):
    import sqlite3

    db = server["home"] / "supportbot.db"
    assert db.is_file()
    with sqlite3.connect(db) as con:
        assert con.execute("pragma journal_mode").fetchone()[0] == "wal"
        n = con.execute("select count(*) from predictions").fetchone()[0]
    assert n >= len(EXPECTED)
