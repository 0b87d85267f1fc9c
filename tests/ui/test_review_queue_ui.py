"""The review queue panel of the staff UI (ui/review_queue.py) over HTTP on a real server
with logins: refused without a login or after the user is removed, a logged-in agent sees
the ranked turns with why and confirms or corrects one in a click, stored as a confirmed
feedback row the export reads; a path or a file sent as the item is refused."""

from __future__ import annotations

import json

import httpx
import pytest
import sqlalchemy as sa

from app.server import create_app
from fixtures.dialogue import make_runtime
from fixtures.server import serve
from storage.export import collect_rows
from storage.models import Feedback
from storage.repositories import conversations
from ui.auth import add_user, remove_user
from fixtures.gradio_events import call

PASSWORDS = {"ana": "agent-password-1", "bob": "bob-password-1"}
UNSURE = {"negative": 0.40, "neutral": 0.36, "positive": 0.24}
SURE = {"negative": 0.02, "neutral": 0.03, "positive": 0.95}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    runtime = make_runtime(tmp_path_factory.mktemp("queue-ui"))
    for user in PASSWORDS:
        add_user(runtime.sessions, user, "agent", PASSWORDS[user])
    with serve(create_app(runtime, ui=True)) as url:
        yield url, runtime
    runtime.close()


def login(url: str, user: str) -> httpx.Client:
    client = httpx.Client(timeout=60)
    r = client.post(url + "/login", data={"username": user, "password": PASSWORDS[user]})
    assert r.status_code == 200, r.text
    return client


def seed(runtime, text, scores, escalated=False) -> str:
    label = max(scores, key=scores.get)
    with runtime.sessions.begin() as s:
        c = conversations.create_conversation(s, owner="chat")
        m = conversations.add_message(s, conversation_id=c.id, role="customer", text=text, language="en",
                                      sentiment_label=label, sentiment_score=scores[label], sentiment_scores=scores)
        if escalated:
            conversations.set_status(s, conversation_id=c.id, status="escalated", escalation_reason="agent_takeover")
        return m.id


def feedback_on(runtime, message_id) -> list[Feedback]:
    with runtime.sessions() as s:
        return list(s.scalars(sa.select(Feedback).where(Feedback.message_id == message_id)))


def test_the_queue_needs_a_login(env):
    url, runtime = env
    mid = seed(runtime, "anonymous try", UNSURE)
    anon = httpx.Client(timeout=30)
    for api_name, data in (("review_queue_list", ["all"]), ("review_queue_confirm", [f"{mid}|sentiment", "all"]),
                           ("review_queue_correct", [f"{mid}|sentiment", "positive", "all"])):
        event, payload = call(anon, url, api_name, *data)
        assert event == "http" and payload.status_code == 401, api_name
    assert feedback_on(runtime, mid) == []


def test_an_agent_confirms_and_corrects_from_the_ranked_queue(env):
    url, runtime = env
    calm = seed(runtime, "all fine thank you", SURE)
    doubtful = seed(runtime, "great, get me a person", SURE, escalated=True)
    unsure = seed(runtime, "it came, sort of", UNSURE)
    ana = login(url, "ana")
    event, (table, pick) = call(ana, url, "review_queue_list", "sentiment")
    assert event == "complete"
    ids = [row[-1] for row in table["data"]]
    assert ids.index(f"{doubtful}|sentiment") < ids.index(f"{unsure}|sentiment") < ids.index(f"{calm}|sentiment")
    row = table["data"][ids.index(f"{doubtful}|sentiment")]
    assert row[1:3] == ["sentiment", "positive 0.95"] and "handed to a person (agent_takeover)" in row[3]

    event, (status, *_) = call(ana, url, "review_queue_confirm", f"{calm}|sentiment", "sentiment")
    assert event == "complete" and status == "Confirmed positive (sentiment).", status
    event, (status, table, _) = call(ana, url, "review_queue_correct", f"{doubtful}|sentiment", "negative", "sentiment")
    assert event == "complete" and status == "Corrected positive → negative (sentiment).", status
    assert not {f"{calm}|sentiment", f"{doubtful}|sentiment"} & {row[-1] for row in table["data"]}
    [up], [down] = feedback_on(runtime, calm), feedback_on(runtime, doubtful)
    assert (up.rating, up.corrected_sentiment, up.review_status, up.confirmed_by, up.submitted_by) == (
        "up", "positive", "confirmed", "ana", "ui:ana")
    assert (down.rating, down.corrected_sentiment, down.review_status, down.confirmed_by) == (
        "down", "negative", "confirmed", "ana")
    with runtime.sessions() as s:
        exported = {r.data["text"]: r.data["label"] for r in collect_rows(s, what="sentiment")}
    assert exported["all fine thank you"] == "positive" and exported["great, get me a person"] == "negative"


@pytest.mark.parametrize("item, label", [
    ("/etc/passwd|sentiment", "negative"),
    ({"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}, "negative"),
    ("{mid}|chat", "negative"),
    ("{mid}|sentiment", "furious"),
    ("{mid}|intent", "complaint"),  # no intent model here: an intent label cannot be checked
])
def test_a_path_a_file_or_a_bad_label_is_refused(env, item, label):
    url, runtime = env
    mid = seed(runtime, "refuse me", UNSURE)
    item = item.replace("{mid}", mid) if isinstance(item, str) else item
    event, payload = call(login(url, "ana"), url, "review_queue_correct", item, label, "all")
    assert event in ("error", "http"), payload
    assert feedback_on(runtime, mid) == []


def test_a_removed_user_loses_the_queue_at_once(env):
    url, runtime = env
    mid = seed(runtime, "bob was here", UNSURE)
    bob = login(url, "bob")
    assert call(bob, url, "review_queue_list", "all")[0] == "complete"
    remove_user(runtime.sessions, "bob")
    for api_name, data in (("review_queue_list", ["all"]), ("review_queue_confirm", [f"{mid}|sentiment", "all"])):
        event, payload = call(bob, url, api_name, *data)
        assert event in ("error", "http"), (api_name, event, payload)
    assert feedback_on(runtime, mid) == []
