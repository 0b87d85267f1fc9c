"""POST /v1/feedback (API.md): 👍/👎, comments and corrections on messages, stored
PII-redacted; replays are refused with 409. Real SQLite file, the make_runtime fakes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.server import create_app
from fixtures.dialogue import make_runtime
from storage.models import Feedback

PII_COMMENT = "wrong answer; write to a.b@example.com or charge 4111 1111 1111 1111"
REDACTED_COMMENT = "wrong answer; write to [EMAIL] or charge [CARD]"


def _start(tmp_path, **settings):
    rt = make_runtime(tmp_path, **settings)
    client = TestClient(create_app(rt, ui=False))
    client.__enter__()
    return rt, client


@pytest.fixture
def rt_client(tmp_path):
    rt, client = _start(tmp_path)
    yield rt, client
    client.__exit__(None, None, None)
    rt.close()


@pytest.fixture
def client(rt_client):
    return rt_client[1]


def turn(client, text="How long does shipping take?") -> dict:
    cid = client.post("/v1/conversations", json={}).json()["id"]
    r = client.post(f"/v1/conversations/{cid}/messages", json={"text": text})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reply"] is not None
    return body  # message_id: the customer's turn; reply.message_id: the bot's


def stored(rt) -> list[Feedback]:
    with rt.sessions() as s:
        return list(s.scalars(sa.select(Feedback).order_by(Feedback.created_at)))


def test_feedback_is_stored_with_a_normalised_label(rt_client):
    rt, client = rt_client
    t = turn(client)
    r = client.post("/v1/feedback", json={"message_id": t["message_id"], "rating": "down",
                                          "corrected_sentiment": "NEG", "comment": "it was a complaint"})
    assert r.status_code == 201, r.text
    assert set(r.json()) == {"id"}
    [row] = stored(rt)
    assert row.id == r.json()["id"] and row.message_id == t["message_id"]
    assert (row.rating, row.corrected_sentiment, row.comment) == ("down", "negative", "it was a complaint")
    assert row.corrected_reply is None and row.original is None

    up = client.post("/v1/feedback", json={"message_id": t["reply"]["message_id"], "rating": "up"})
    assert up.status_code == 201, up.text
    assert {f.rating for f in stored(rt)} == {"down", "up"}


def test_a_corrected_reply_on_a_bot_message_is_stored(rt_client):
    rt, client = rt_client
    t = turn(client)
    r = client.post("/v1/feedback", json={"message_id": t["reply"]["message_id"], "rating": "down",
                                          "corrected_reply": "Standard shipping takes 3-5 business days.",
                                          "corrected_intent": "delivery_period"})
    assert r.status_code == 201, r.text
    [row] = stored(rt)
    assert row.corrected_reply == "Standard shipping takes 3-5 business days."
    assert row.corrected_intent == "delivery_period"


def test_unknown_message_is_404(rt_client):
    rt, client = rt_client
    r = client.post("/v1/feedback", json={"message_id": "no-such-message", "rating": "up"})
    assert r.status_code == 404, r.text
    assert r.json()["error"]["type"] == "not_found"
    assert stored(rt) == []


def test_an_identical_replay_is_409_and_stored_once(rt_client):
    rt, client = rt_client
    t = turn(client)
    body = {"message_id": t["reply"]["message_id"], "rating": "down", "comment": "too vague",
            "corrected_sentiment": "negative"}
    first = client.post("/v1/feedback", json=body)
    assert first.status_code == 201, first.text
    replay = client.post("/v1/feedback", json=body)
    assert replay.status_code == 409, replay.text
    assert replay.json()["error"]["type"] == "conflict"
    assert first.json()["id"] in replay.json()["error"]["message"]
    # the same label spelt differently is the same feedback
    assert client.post("/v1/feedback", json={**body, "corrected_sentiment": "NEG"}).status_code == 409
    assert [f.id for f in stored(rt)] == [first.json()["id"]]

    # a different payload on the same message is new feedback
    other = client.post("/v1/feedback", json={**body, "comment": "too vague, and slow"})
    assert other.status_code == 201, other.text
    up = client.post("/v1/feedback", json={"message_id": body["message_id"], "rating": "up"})
    assert up.status_code == 201, up.text
    assert len(stored(rt)) == 3 and len({f.id for f in stored(rt)}) == 3


@pytest.mark.parametrize("change, on_bot", [
    ({"rating": "meh"}, False),
    ({"rating": None}, False),
    ({"corrected_sentiment": "furious"}, False),
    ({"corrected_sentiment": ""}, False),
    ({"comment": ""}, False),
    ({"comment": "   "}, False),
    ({"comment": "x" * 2001}, False),
    ({"corrected_intent": "  "}, False),
    ({"corrected_reply": "Here is a better reply."}, False),  # on the customer's message
    ({"corrected_reply": ""}, True),
    ({"extra": 1}, False),
    ({"message_id": ""}, False),
])
def test_bad_input_is_422_and_stores_nothing(rt_client, change, on_bot):
    rt, client = rt_client
    t = turn(client)
    message_id = t["reply"]["message_id"] if on_bot else t["message_id"]
    body = {"message_id": message_id, "rating": "down", **change}
    r = client.post("/v1/feedback", json=body)
    assert r.status_code == 422, r.text
    assert set(r.json()["error"]) == {"type", "message"}
    assert stored(rt) == []


def test_missing_rating_is_422(rt_client):
    rt, client = rt_client
    t = turn(client)
    assert client.post("/v1/feedback", json={"message_id": t["message_id"]}).status_code == 422
    assert stored(rt) == []


def test_comment_and_corrected_reply_are_stored_redacted_without_the_original(rt_client):
    rt, client = rt_client
    t = turn(client)
    r = client.post("/v1/feedback", json={"message_id": t["reply"]["message_id"], "rating": "down",
                                          "comment": PII_COMMENT,
                                          "corrected_reply": "We will mail x.y@example.org today."})
    assert r.status_code == 201, r.text
    [row] = stored(rt)
    assert row.comment == REDACTED_COMMENT
    assert row.corrected_reply == "We will mail [EMAIL] today."
    assert row.original is None
    with rt.engine.connect() as c:  # NULL in the database, not the JSON text 'null'
        assert c.execute(sa.text("SELECT original IS NULL FROM feedback")).scalar() == 1
        dump = " ".join(str(v) for v in c.execute(sa.text("SELECT * FROM feedback")).one())
    assert "4111" not in dump and "example.com" not in dump and "example.org" not in dump


def test_the_original_is_kept_when_the_operator_opts_in(tmp_path):
    from cryptography.fernet import Fernet

    rt, client = _start(tmp_path, pii_keep_original=True, pii_original_key=Fernet.generate_key().decode())
    try:
        t = turn(client)
        r = client.post("/v1/feedback", json={"message_id": t["reply"]["message_id"], "rating": "down",
                                              "comment": PII_COMMENT})
        assert r.status_code == 201, r.text
        clean = client.post("/v1/feedback", json={"message_id": t["message_id"], "rating": "up",
                                                  "comment": "nothing private here"})
        assert clean.status_code == 201
        rows = {f.id: f for f in stored(rt)}
        kept = rows[r.json()["id"]]
        assert kept.comment == REDACTED_COMMENT
        # sealed at rest: not readable without the key, the key opens it
        assert PII_COMMENT not in str(kept.original) and kept.original["corrected_reply"] is None
        assert rt.sealer.unseal(kept.original["comment"]) == PII_COMMENT
        assert rows[clean.json()["id"]].original is None  # nothing was redacted: nothing to keep
    finally:
        client.__exit__(None, None, None)
        rt.close()
