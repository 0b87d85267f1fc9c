"""/v1/conversations (API.md): customer turns, human handoff, agent replies, release,
history, listing and erasure, over a real SQLite file."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.server import create_app
from fixtures.dialogue import make_runtime


@pytest.fixture
def client(tmp_path):
    rt = make_runtime(tmp_path)
    with TestClient(create_app(rt, ui=False)) as c:
        yield c
    rt.close()


def new(client, **body) -> str:
    r = client.post("/v1/conversations", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_a_handoff_round_trip(client):
    cid = new(client, channel="web", customer_ref="cust-1", metadata={"page": "/checkout"})
    r = client.post(f"/v1/conversations/{cid}/messages", json={"text": "How long does shipping take?"}).json()
    assert r["reply"]["sources"][0]["id"] == "en-shipping" and r["status"] == "open"
    # TurnPublic (bot/api/schemas.py) is the shape, nothing internal (language, latency) leaks
    assert set(r) == {"conversation_id", "message_id", "sentiment", "intent", "reply", "escalate",
                      "escalation_reason", "status"} and r["conversation_id"] == cid
    assert set(r["reply"]) == {"message_id", "text", "sources"} and set(r["reply"]["sources"][0]) == {"id", "title", "score"}
    r = client.post(f"/v1/conversations/{cid}/messages", json={"text": "I want to talk to a human"}).json()
    assert r["escalate"] and r["escalation_reason"] == "customer_request" and r["status"] == "escalated"
    r = client.post(f"/v1/conversations/{cid}/messages", json={"text": "hello??"}).json()
    assert r["reply"] is None and r["status"] == "escalated"
    inbox = client.get("/v1/conversations", params={"status": "escalated"}).json()
    assert [c["id"] for c in inbox["data"]] == [cid] and inbox["data"][0]["escalation_reason"] == "customer_request"
    a = client.post(f"/v1/conversations/{cid}/agent-messages", json={"text": "Hi, Ana here.", "agent": "ana"})
    assert a.status_code == 201 and a.json()["role"] == "agent"
    assert client.post(f"/v1/conversations/{cid}/release").json()["status"] == "open"
    conv = client.get(f"/v1/conversations/{cid}").json()
    assert [m["role"] for m in conv["messages"]] == ["customer", "bot", "customer", "bot", "customer", "agent"]
    assert conv["messages"][0]["sentiment"]["label"] == "neutral"
    assert conv["messages"][5] == {**conv["messages"][5], "text": "Hi, Ana here.", "agent": "ana"}
    assert conv["metadata"] == {"page": "/checkout"} and conv["customer_ref"] == "cust-1"


def test_listing_pages_and_filters(client):
    ids = [new(client) for _ in range(3)]
    first = client.get("/v1/conversations", params={"limit": 2}).json()
    assert first["count"] == 2 and first["next_cursor"]
    rest = client.get("/v1/conversations", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert {c["id"] for c in first["data"] + rest["data"]} == set(ids) and rest["next_cursor"] is None
    assert client.get("/v1/conversations", params={"status": "bogus"}).status_code == 422
    assert client.get("/v1/conversations", params={"cursor": "garbage!"}).status_code == 422


def test_delete_erases_everything(client):
    cid = new(client)
    client.post(f"/v1/conversations/{cid}/messages", json={"text": "How do I reset my password?"})
    assert client.delete(f"/v1/conversations/{cid}").status_code == 204
    assert client.get(f"/v1/conversations/{cid}").status_code == 404
    assert client.delete(f"/v1/conversations/{cid}").status_code == 404


@pytest.mark.parametrize("path, body, status", [
    ("/v1/conversations/nope/messages", {"text": "hi"}, 404),
    ("/v1/conversations/nope/agent-messages", {"text": "hi", "agent": "a"}, 404),
    ("/v1/conversations/nope/release", None, 404),
    ("/v1/conversations/{cid}/messages", {"text": ""}, 422),
    ("/v1/conversations/{cid}/messages", {"text": 5}, 422),
    ("/v1/conversations/{cid}/messages", {"text": "x" * 6000}, 413),
    ("/v1/conversations/{cid}/messages", {"text": "hi", "extra": 1}, 422),
    ("/v1/conversations/{cid}/agent-messages", {"text": "hi"}, 422),
    ("/v1/conversations/{cid}/agent-messages", {"text": "hi", "agent": ""}, 422),
])
def test_bad_input_gets_a_json_error_and_stores_nothing(client, path, body, status):
    cid = new(client)
    r = client.post(path.format(cid=cid), json=body)
    assert r.status_code == status, r.text
    assert set(r.json()["error"]) == {"type", "message"}
    assert client.get(f"/v1/conversations/{cid}").json()["messages"] == []
