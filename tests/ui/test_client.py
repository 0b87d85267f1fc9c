"""The UI's named API endpoints through gradio_client: chat, feedback, hand-off and the
inbox, file labelling, the dashboard, the knowledge base, and logins with roles."""

from __future__ import annotations

import csv

import pytest
import sqlalchemy as sa

from app.server import create_app
from fixtures.dialogue import make_runtime
from fixtures.server import serve
from storage.models import Feedback, KbArticle
from ui.auth import add_user

gradio_client = pytest.importorskip("gradio_client")


def text_of(message: dict) -> str:
    content = message["content"]
    if isinstance(content, list):  # Gradio 6: a list of {"type": "text", "text": ...}
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content


@pytest.fixture(scope="module")
def client(ui_server):
    return gradio_client.Client(ui_server + "/", verbose=False)


def test_chat_send_feedback_and_reopen(client, ui_runtime):
    chat, cid, cleared, target, status = client.predict("How long does shipping take?", "", "en",
                                                        api_name="/chat_send")
    assert cid and cleared == "" and status == ""
    assert "Sources: Shipping times [en-shipping]" in text_of(chat[-1])
    reply_id = target["value"]  # the newest reply is preselected for feedback
    status, *_, feedback_id = client.predict(reply_id, "Standard: 3-5 days; express: 1-2.", "", "neutral", cid,
                                             api_name="/chat_feedback_down")
    assert "Feedback saved" in status
    with ui_runtime.sessions() as session:
        row = session.get(Feedback, feedback_id)
        assert (row.rating, row.corrected_reply, row.corrected_sentiment) == (
            "down", "Standard: 3-5 days; express: 1-2.", "neutral")
    again = client.predict(cid, "en", api_name="/chat_open")
    assert again[0] == cid and len(again[1]) == 2


def test_handoff_inbox_reply_and_release(client):
    _, cid, *_ = client.predict("Where is my parcel?", "", "en", api_name="/chat_send")
    chat, _, _, _, status = client.predict(cid, "en", api_name="/chat_handoff")
    assert "person" in status
    rows, _choices = client.predict(None, api_name="/inbox_list")
    assert cid in [row[-1] for row in rows["data"]]
    history = client.predict(cid, "Hello, I am looking at your parcel now. <b>ok</b>", "ana", api_name="/inbox_reply")[0]
    assert "looking at your parcel" in history and "&lt;b&gt;ok&lt;/b&gt;" in history
    reopened = client.predict(cid, "en", api_name="/chat_open")[1]
    assert "[ana] Hello, I am looking at your parcel now." in text_of(reopened[-1])
    history, rows, _ = client.predict(cid, api_name="/inbox_release")
    assert "open" in history and cid not in [row[-1] for row in rows["data"]]


def test_label_file_endpoint(client, tmp_path):
    source = tmp_path / "texts.txt"
    source.write_text("I love it\nI hate waiting\n\n这个很好\n", encoding="utf-8")
    out, summary, version = client.predict(gradio_client.handle_file(str(source)), api_name="/label_file")
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert [r["label"] for r in rows] == ["positive", "negative", rows[2]["label"]] and rows[2]["language"] == "zh"
    assert "Labelled 3 of 3 rows" in summary and version.startswith("kw-en")


def test_dashboard_endpoint(client):
    summary, activity, mix, reasons, ratings, intents, unanswered, versions, *loop = client.predict(
        "All time", api_name="/dashboard")
    assert len(loop) == 4 and "confirmed corrections" in loop[0]  # the learning loop, after the rest
    assert "conversations" in summary and "escalation rate" in summary
    assert activity["value"]["data"] if isinstance(activity, dict) and "value" in activity else activity
    assert [row[0] for row in versions["data"]]


def test_kb_edit_through_the_admin_endpoints(client, ui_runtime):
    status, _rows, _ = client.predict("en-gift-cards", "Gift cards", "en", "gift_card",
                                      "Gift cards never expire and can be used on any order.",
                                      api_name="/admin_kb_save")
    assert "Saved article" in status
    with ui_runtime.sessions() as session:
        assert session.get(KbArticle, "en-gift-cards").embedding is not None
    fields = client.predict("en-gift-cards", api_name="/admin_kb_get")
    assert fields[1] == "Gift cards" and fields[3] == "gift_card"


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("ui-logins")
    runtime = make_runtime(home)
    add_user(runtime.sessions, "ana", "agent", "agent-password")
    add_user(runtime.sessions, "root", "admin", "admin-password")
    with serve(create_app(runtime, ui=True)) as url:
        yield url
    runtime.close()


def test_logins_and_roles(guarded_server):
    with pytest.raises(Exception):
        gradio_client.Client(guarded_server + "/", verbose=False)  # the staff UI needs a login
    with pytest.raises(Exception):
        gradio_client.Client(guarded_server + "/", auth=("ana", "wrong-password"), verbose=False)

    agent = gradio_client.Client(guarded_server + "/", auth=("ana", "agent-password"), verbose=False)
    rows, _ = agent.predict(None, api_name="/inbox_list")
    assert rows["data"] is not None
    with pytest.raises(Exception, match="admin role"):
        agent.predict("x1", "X", "en", "", "body", api_name="/admin_kb_save")

    admin = gradio_client.Client(guarded_server + "/", auth=("root", "admin-password"), verbose=False)
    status, *_ = admin.predict("x1", "X", "en", "", "An article body.", api_name="/admin_kb_save")
    assert "Saved" in status

    customer = gradio_client.Client(guarded_server + "/chat/", verbose=False)  # open for customers
    _, cid, *_ = customer.predict("How long does shipping take?", "", "en", api_name="/chat_send")
    assert cid
