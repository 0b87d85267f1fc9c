"""GET /v1/review-queue and its one-click confirm / correct (issue 18), attacked first:
customer keys are refused, a customer's own correction stays a signal, confirmed turns
leave the queue, and an agent's decision is a confirmed feedback row the export reads.
Real SQLite file, keys of every scope, fake classifiers (keywords for sentiment, a fixed
intent model with three labels)."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.server import create_app
from bot.intent import IntentService
from bot.knowledge import import_articles
from bot.runtime import Runtime
from bot.sentiment import SentimentService
from core.config import settings_with
from fixtures.dialogue import ARTICLES
from fixtures.fakes import HashEmbedder, KeywordClassifier, ScriptedGenerator
from storage.export import collect_rows
from storage.models import Feedback
from storage.repositories import api_keys, conversations

INTENTS = ["cancel_order", "complaint", "track_order"]
SURE = {"negative": 0.02, "neutral": 0.03, "positive": 0.95}
UNSURE = {"negative": 0.40, "neutral": 0.36, "positive": 0.24}


class FixedIntent:
    """An intent model (bot.classifier.Classifier) that is never sure: track_order at 0.5."""

    name = "intent-fixed"
    labels = INTENTS

    def predict_proba(self, texts):
        return np.tile(np.array([0.2, 0.3, 0.5], dtype=np.float32), (len(texts), 1))


@pytest.fixture
def rt(tmp_path):
    runtime = Runtime.start(
        settings_with(home=tmp_path, demo_kb=False, chat_generate_languages="en", answer_threshold=0.2),
        sentiment=SentimentService(KeywordClassifier("kw-en"), {"zh": KeywordClassifier("kw-zh")}),
        intent=IntentService(FixedIntent()), embedder=HashEmbedder(), generator=ScriptedGenerator())
    with runtime.sessions.begin() as session:
        import_articles(session, list(ARTICLES), runtime.embedder)
    yield runtime
    runtime.close()


@pytest.fixture
def keys(rt):
    with rt.sessions.begin() as session:
        return {name: api_keys.create_api_key(session, name=name, scope=scope)[1]
                for name, scope in (("shop", "customer"), ("desk", "agent"), ("ops", "admin"))}


@pytest.fixture
def client(rt, keys):
    with TestClient(create_app(rt, ui=False)) as c:
        yield c


def auth(keys, name) -> dict:
    return {"Authorization": f"Bearer {keys[name]}"}


def seed(rt, text, scores=SURE, *, intent=None, escalated=None, agent_wrote=False, language="en") -> str:
    """A stored customer turn (and the bot's reply) with these predictions; its id."""
    label = max(scores, key=scores.get)
    with rt.sessions.begin() as s:
        c = conversations.create_conversation(s, owner="key:someone")
        m = conversations.add_message(s, conversation_id=c.id, role="customer", text=text, language=language,
                                      sentiment_label=label, sentiment_score=scores[label], sentiment_scores=scores,
                                      intent_label=intent[0] if intent else None,
                                      intent_score=intent[1] if intent else None)
        conversations.add_message(s, conversation_id=c.id, role="bot", text="Here is what I found.")
        if agent_wrote:
            conversations.add_message(s, conversation_id=c.id, role="agent", text="Hi, I'm Ana.", agent="ana")
        if escalated:
            conversations.set_status(s, conversation_id=c.id, status="escalated", escalation_reason=escalated)
        return m.id


def queue(client, keys, who="desk", **params) -> dict:
    r = client.get("/v1/review-queue", params=params, headers=auth(keys, who))
    assert r.status_code == 200, r.text
    return r.json()


def items(body) -> list[tuple[str, str]]:
    return [(i["message_id"], i["task"]) for i in body["data"]]


def feedback_rows(rt) -> list[Feedback]:
    with rt.sessions() as s:
        return list(s.scalars(sa.select(Feedback).order_by(Feedback.created_at)))


def exported(rt, what) -> list[dict]:
    with rt.sessions() as s:
        return [r.data for r in collect_rows(s, what=what)]


def test_a_customer_key_gets_403_on_the_queue_and_on_its_decisions(client, rt, keys):
    mid = seed(rt, "where is my parcel", UNSURE)
    for who in ("shop", None):
        headers = auth(keys, who) if who else {}
        expected = 403 if who else 401
        assert client.get("/v1/review-queue", headers=headers).status_code == expected
        r = client.post(f"/v1/review-queue/{mid}/confirm", json={"task": "sentiment"}, headers=headers)
        assert r.status_code == expected, r.text
        r = client.post(f"/v1/review-queue/{mid}/correct", json={"task": "sentiment", "label": "positive"},
                        headers=headers)
        assert r.status_code == expected, r.text
    assert client.get("/v1/review-queue", headers=auth(keys, "shop")).json()["error"]["type"] == "forbidden"
    assert feedback_rows(rt) == []
    assert items(queue(client, keys, "desk")) == items(queue(client, keys, "ops")) == [(mid, "sentiment")]


def test_uncertain_and_contradicted_turns_come_first_with_their_reasons(client, rt, keys):
    confident = seed(rt, "thanks, all good", SURE)
    unsure = seed(rt, "well it arrived I guess", UNSURE)
    escalated = seed(rt, "great, now give me a human", SURE, escalated="agent_takeover")
    body = queue(client, keys, task="sentiment")
    assert items(body) == [(escalated, "sentiment"), (unsure, "sentiment"), (confident, "sentiment")]
    top = body["data"][0]
    assert set(top) == {"message_id", "conversation_id", "task", "text", "language", "label", "confidence",
                        "priority", "reasons", "created_at"}
    assert (top["label"], top["confidence"], top["text"]) == ("positive", 0.95, "great, now give me a human")
    assert [r["code"] for r in top["reasons"]] == ["outcome_disagrees"]
    assert "handed to a person (agent_takeover)" in top["reasons"][0]["detail"]
    assert [r["code"] for r in body["data"][1]["reasons"]] == ["low_confidence"]
    assert body["data"][2]["reasons"] == [] and body["count"] == 3 and body["next_cursor"] is None
    released = seed(rt, "lovely, but a person please", SURE, agent_wrote=True)  # handed over, then released
    top_two = queue(client, keys, task="sentiment", limit=2)["data"]  # the same priority: ties by message id
    assert {i["message_id"] for i in top_two} == {escalated, released}
    assert [r["code"] for r in top_two[0]["reasons"]] == [r["code"] for r in top_two[1]["reasons"]]


def test_a_customers_own_correction_stays_a_signal_until_an_agent_decides(client, rt, keys):
    shop = auth(keys, "shop")
    cid = client.post("/v1/conversations", json={}, headers=shop).json()["id"]
    turn = client.post(f"/v1/conversations/{cid}/messages", json={"text": "How long does shipping take?"},
                       headers=shop).json()
    mid = turn["message_id"]
    r = client.post("/v1/feedback", json={"message_id": mid, "rating": "down", "corrected_sentiment": "positive"},
                    headers=shop)
    assert r.status_code == 201, r.text
    assert [(f.review_status, f.confirmed_by) for f in feedback_rows(rt)] == [("pending", None)]
    assert exported(rt, "sentiment") == []  # a signal, not training data
    [item] = [i for i in queue(client, keys, task="sentiment")["data"] if i["message_id"] == mid]
    assert item["label"] == "neutral" and "customer_disagrees" in [r["code"] for r in item["reasons"]]

    r = client.post(f"/v1/review-queue/{mid}/correct", json={"task": "sentiment", "label": "POS"},
                    headers=auth(keys, "desk"))
    assert r.status_code == 201, r.text
    assert r.json() == {"feedback_id": r.json()["feedback_id"], "message_id": mid, "task": "sentiment",
                        "label": "positive", "predicted": "neutral", "rating": "down", "review_status": "confirmed",
                        "confirmed_by": "desk"}
    [row] = feedback_rows(rt)  # the customer's row, now confirmed by the agent (one row, not two)
    assert (row.id, row.review_status, row.confirmed_by) == (r.json()["feedback_id"], "confirmed", "desk")
    assert row.submitted_by.startswith("key:")
    assert exported(rt, "sentiment") == [{"text": "How long does shipping take?", "label": "positive"}]
    assert (mid, "sentiment") not in items(queue(client, keys))
    assert (mid, "intent") in items(queue(client, keys))  # its intent still waits


def test_confirm_and_correct_are_feedback_rows_the_export_includes(client, rt, keys):
    one = seed(rt, "cancel it now", UNSURE, intent=("cancel_order", 0.55))
    two = seed(rt, "my parcel is late again", UNSURE, intent=("track_order", 0.25))
    desk = auth(keys, "desk")
    confirmed = client.post(f"/v1/review-queue/{one}/confirm", json={"task": "sentiment"}, headers=desk)
    corrected = client.post(f"/v1/review-queue/{two}/correct", json={"task": "intent", "label": "complaint"},
                            headers=desk)
    assert confirmed.status_code == corrected.status_code == 201, (confirmed.text, corrected.text)
    assert (confirmed.json()["rating"], confirmed.json()["label"]) == ("up", "negative")
    assert (corrected.json()["rating"], corrected.json()["predicted"]) == ("down", "track_order")
    rows = {f.id: f for f in feedback_rows(rt)}
    a, b = rows[confirmed.json()["feedback_id"]], rows[corrected.json()["feedback_id"]]
    assert (a.message_id, a.corrected_sentiment, a.corrected_intent, a.review_status) == (
        one, "negative", None, "confirmed")
    assert (b.message_id, b.corrected_intent, b.corrected_sentiment, b.review_status) == (
        two, "complaint", None, "confirmed")
    assert a.confirmed_by == b.confirmed_by == "desk" and a.submitted_by.startswith("key:")
    assert exported(rt, "sentiment") == [{"text": "cancel it now", "label": "negative"}]
    assert exported(rt, "intent") == [{"text": "my parcel is late again", "label": "complaint"}]
    assert sorted(items(queue(client, keys))) == sorted([(one, "intent"), (two, "sentiment")])
    again = client.post(f"/v1/review-queue/{one}/correct", json={"task": "sentiment", "label": "neutral"},
                        headers=desk)
    assert again.status_code == 409 and "POST /v1/feedback" in again.json()["error"]["message"]


def test_a_label_confirmed_on_the_bot_reply_takes_the_turn_out_of_the_queue(client, rt, keys):
    mid = seed(rt, "meh", UNSURE)
    with rt.sessions() as s:
        reply = conversations.get_message(s, message_id=mid).conversation.messages[1].id
    r = client.post("/v1/feedback", json={"message_id": reply, "rating": "down", "corrected_sentiment": "negative"},
                    headers=auth(keys, "desk"))
    assert r.status_code == 201, r.text
    assert queue(client, keys)["data"] == []
    assert client.post(f"/v1/review-queue/{mid}/confirm", json={"task": "sentiment"},
                       headers=auth(keys, "desk")).status_code == 409


@pytest.mark.parametrize("path, body, status", [
    ("{mid}/correct", {"task": "sentiment", "label": "furious"}, 422),
    ("{mid}/correct", {"task": "intent", "label": "not_an_intent"}, 422),
    ("{mid}/correct", {"task": "intent", "label": "complaint", "extra": 1}, 422),
    ("{mid}/correct", {"task": "chat", "label": "x"}, 422),
    ("{mid}/confirm", {"task": "intent"}, 422),  # no intent prediction to confirm
    ("{reply}/confirm", {"task": "sentiment"}, 404),  # not a customer turn
    ("nope/confirm", {"task": "sentiment"}, 404),
])
def test_decisions_are_checked(client, rt, keys, path, body, status):
    mid = seed(rt, "hmm", UNSURE)
    with rt.sessions() as s:
        reply = conversations.get_message(s, message_id=mid).conversation.messages[1].id
    r = client.post("/v1/review-queue/" + path.format(mid=mid, reply=reply), json=body, headers=auth(keys, "desk"))
    assert r.status_code == status, r.text
    assert feedback_rows(rt) == []


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"task": "chat"}, {"cursor": "!!"}])
def test_bad_parameters_are_422(client, keys, params):
    r = client.get("/v1/review-queue", params=params, headers=auth(keys, "desk"))
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_request", r.text


def test_filters_and_pages(client, rt, keys):
    english = [seed(rt, f"turn {i}", UNSURE, intent=("track_order", 0.3 + i / 10)) for i in range(3)]
    chinese = seed(rt, "快递到哪了", UNSURE, language="zh")
    assert {m for m, _ in items(queue(client, keys, task="intent"))} == set(english)
    assert items(queue(client, keys, language="zh")) == [(chinese, "sentiment")]
    everything = items(queue(client, keys, limit=100))
    assert len(everything) == 7 and queue(client, keys)["count"] == 7  # default limit 20
    seen, cursor = [], None
    while True:
        body = queue(client, keys, limit=3, **({"cursor": cursor} if cursor else {}))
        seen += items(body)
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == everything
