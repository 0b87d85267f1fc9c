"""The real UI in headless Chromium: chat in both languages, feedback, hand-off to a person
and their reply, labelling a file, the dashboard, and escaping."""

from __future__ import annotations

import csv
import io
import re
from urllib.parse import parse_qs, urlparse

import pytest

pytest.importorskip("playwright")
import sqlalchemy as sa
from playwright.sync_api import expect

from storage.models import Feedback

pytestmark = pytest.mark.slow

INJECTION = ('<img src=x onerror="window.__pwned=1"> [click me](http://evil.example/x) '
             '<a href="http://evil.example/y">link</a> <script>window.__pwned=2</script>')


def open_ui(page, url: str, path: str = "/"):
    page.goto(url + path, wait_until="load")
    page.locator("#chat-message textarea").wait_for()


def send(page, text: str):
    page.locator("#chat-message textarea").fill(text)
    page.locator("#chat-send").click()


def bot_messages(page):
    return page.locator("#chat-chatbot .message-row.bot-row, #chat-chatbot [data-testid='bot']")


def conversation_id(page) -> str:
    page.wait_for_function("() => new URL(location.href).searchParams.get('c')")
    return parse_qs(urlparse(page.url).query)["c"][0]


def pick(page, dropdown: str, option_text: str):
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=re.compile(re.escape(option_text))).first.click()


def test_chat_in_english_and_chinese_survives_a_reload(page, ui_server):
    open_ui(page, ui_server)
    send(page, "How long does shipping take?")
    chat = page.locator("#chat-chatbot")
    chat.get_by_text("Sources: Shipping times [en-shipping]").wait_for()
    chat.get_by_text(re.compile(r"sentiment: \w+ \d\.\d\d")).first.wait_for()
    cid = conversation_id(page)

    page.locator("#chat-language").get_by_text("中文").click()
    send(page, "我想退货，怎么办？")
    chat.get_by_text(re.compile("来源: 退货说明")).wait_for()
    assert "30天" in chat.inner_text()

    page.reload(wait_until="load")  # the conversation is on the server, its id in the address
    chat.get_by_text("我想退货，怎么办？").first.wait_for()
    assert "How long does shipping take?" in chat.inner_text()
    assert page.locator("#chat-conversation textarea, #chat-conversation input").first.input_value() == cid


def test_thumbs_down_with_a_correction_is_stored(page, ui_server, ui_runtime):
    open_ui(page, ui_server)
    send(page, "How do I reset my password?")
    page.locator("#chat-chatbot").get_by_text("Sources:").wait_for()
    page.locator("#chat-feedback").get_by_text("Rate a reply").click()
    page.locator("#chat-correction textarea").fill("Use 'Forgot password' on the sign-in page.")
    page.locator("#chat-comment textarea, #chat-comment input").first.fill("too vague")
    page.locator("#chat-down").click()
    page.locator("#chat-feedback-status").get_by_text("Feedback saved").wait_for()
    with ui_runtime.sessions() as session:
        row = session.scalars(sa.select(Feedback).where(Feedback.rating == "down")).one()
        assert row.corrected_reply == "Use 'Forgot password' on the sign-in page."
        assert row.comment == "too vague" and row.message.role == "bot"


def test_talk_to_a_person_then_the_agent_replies_in_the_chat(browser, page, ui_server):
    open_ui(page, ui_server, "/chat/")  # the open customer chat
    send(page, "Where is my parcel?")
    bot_messages(page).first.wait_for()
    page.locator("#chat-person").click()
    page.locator("#chat-status").get_by_text("A person from our team will reply here.").wait_for()
    cid = conversation_id(page).partition(".")[0]  # /chat keeps "ID.SECRET"; the inbox shows the id

    agent = browser.new_page(viewport={"width": 1200, "height": 1000})
    try:
        open_ui(agent, ui_server)
        agent.get_by_role("tab", name="Agent inbox").click()
        agent.locator("#inbox-refresh").click()
        expect(agent.locator("#inbox-table")).to_contain_text(cid)
        assert "customer_request" in agent.locator("#inbox-table").inner_text()
        pick(agent, "#inbox-pick", "customer_request")
        agent.locator("#inbox-history").get_by_text("Where is my parcel?").wait_for()
        agent.locator("#inbox-reply textarea").fill("Hi, this is Ana. Your parcel left our warehouse today.")
        agent.locator("#inbox-send").click()
        agent.locator("#inbox-history").get_by_text("Your parcel left our warehouse today.").wait_for()
    finally:
        agent.close()
    # the customer's page polls for the person's reply
    page.locator("#chat-chatbot").get_by_text("Your parcel left our warehouse today.").wait_for(timeout=15_000)


def test_label_a_csv_file_and_download_it(page, ui_server, tmp_path):
    source = tmp_path / "reviews.csv"
    source.write_text('id,text\n1,I love it\n2,"I hate waiting, awful"\n3,这个很好\n', encoding="utf-8")
    open_ui(page, ui_server)
    page.get_by_role("tab", name="Sentiment").click()
    page.locator("#sentiment-upload input[type=file]").set_input_files(str(source))
    page.locator("#sentiment-upload").get_by_text("reviews.csv").wait_for()
    page.locator("#sentiment-label-file").click()
    page.locator("#sentiment-file-summary").get_by_text("Labelled 3 of 3 rows").wait_for()
    with page.expect_download() as download:
        page.locator("#sentiment-download a").first.click()
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["label"] == "positive" and rows[1]["label"] == "negative"
    assert rows[2]["language"] == "zh" and float(rows[0]["score"]) > 0


def test_dashboard_renders_its_plots(page, ui_server, ui_runtime):
    dialogue = ui_runtime.dialogue
    cid = dialogue.create_conversation(channel="test")
    dialogue.turn(cid, "How long does shipping take?")
    dialogue.turn(cid, "Can you repair my bicycle?")  # nothing in the knowledge base
    open_ui(page, ui_server)
    page.get_by_role("tab", name="Dashboard").click()
    page.locator("#dashboard-summary").get_by_text("escalation rate").wait_for()
    for plot in ("#plot-activity", "#plot-sentiment", "#plot-escalations", "#plot-feedback"):
        page.locator(f"{plot} canvas, {plot} svg.marks").first.wait_for()
    expect(page.locator("#dashboard-unanswered")).to_contain_text("Can you repair my bicycle?")
    expect(page.locator("#dashboard-versions")).to_contain_text("sentiment")


def test_html_and_markdown_links_in_a_message_are_shown_as_text(page, ui_server, ui_runtime):
    dialogue = ui_runtime.dialogue
    cid = dialogue.create_conversation(channel="test")
    dialogue.turn(cid, INJECTION)
    dialogue.agent_message(cid, "Looking into it", agent="ana")  # into the inbox
    open_ui(page, ui_server)
    page.get_by_role("tab", name="Agent inbox").click()
    page.locator("#inbox-refresh").click()
    pick(page, "#inbox-pick", "agent_takeover")
    history = page.locator("#inbox-history")
    history.get_by_text("[click me](http://evil.example/x)", exact=False).wait_for()
    assert history.locator("img").count() == 0
    assert history.locator("script").count() == 0
    assert page.locator("a[href*='evil.example']").count() == 0
    assert "<img src=x" in history.inner_text()

    # the same conversation reopened in the Chat tab is plain text too
    page.get_by_role("tab", name="Chat").click()
    page.locator("#chat-conversation textarea, #chat-conversation input").first.fill(cid)
    page.locator("#chat-open").click()
    chat = page.locator("#chat-chatbot")
    chat.get_by_text("Looking into it").wait_for()
    assert chat.locator("img[src=x]").count() == 0
    assert "<img src=x" in chat.inner_text()
    assert page.locator("a[href*='evil.example']").count() == 0
    assert page.evaluate("() => window.__pwned") is None
