"""PII redaction in the dialogue: customer and agent messages are stored (and classified,
and shown to the chat model) with placeholders; the original text is stored only when
the operator opts in (SUPPORTBOT_PII_KEEP_ORIGINAL)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.server import create_app
from fixtures.dialogue import make_runtime
from storage.models import Message

CARD_MAIL = "my card 4111 1111 1111 1111, mail me at a.b@example.com"
CARD_MAIL_REDACTED = "my card [CARD], mail me at [EMAIL]"
ZH_PHONE = "我的手机号是13800138000，订单还没到"
ZH_PHONE_REDACTED = "我的手机号是[PHONE]，订单还没到"
AGENT = "I'll call you on +44 20 7946 0958 or write to a.b@example.com"
AGENT_REDACTED = "I'll call you on [PHONE] or write to [EMAIL]"


@pytest.fixture(params=[False, True], ids=["default", "keep_original"])
def setup(request, tmp_path):
    from cryptography.fernet import Fernet

    keep = {"pii_keep_original": True, "pii_original_key": Fernet.generate_key().decode()}
    rt = make_runtime(tmp_path, **(keep if request.param else {}))
    with TestClient(create_app(rt, ui=False)) as client:
        yield rt, client, request.param
    rt.close()


def stored(rt, conversation_id) -> list[Message]:
    with rt.sessions() as s:
        rows = list(s.scalars(sa.select(Message).where(Message.conversation_id == conversation_id)
                              .order_by(Message.created_at)))
        s.expunge_all()
        return rows


def raw_database_text(rt) -> str:
    with rt.engine.connect() as c:
        return " ".join(str(v) for row in c.execute(sa.text("SELECT * FROM messages")) for v in row)


def test_customer_and_agent_messages_are_stored_redacted(setup):
    rt, client, keep = setup
    cid = client.post("/v1/conversations", json={}).json()["id"]
    r = client.post(f"/v1/conversations/{cid}/messages", json={"text": CARD_MAIL})
    assert r.status_code == 200, r.text
    r = client.post(f"/v1/conversations/{cid}/messages", json={"text": ZH_PHONE})
    assert r.status_code == 200, r.text
    a = client.post(f"/v1/conversations/{cid}/agent-messages", json={"text": AGENT, "agent": "ana"})
    assert a.status_code == 201, a.text
    assert a.json()["text"] == AGENT_REDACTED

    messages = client.get(f"/v1/conversations/{cid}").json()["messages"]
    assert [(m["role"], m["text"]) for m in messages if m["role"] != "bot"] == [
        ("customer", CARD_MAIL_REDACTED), ("customer", ZH_PHONE_REDACTED), ("agent", AGENT_REDACTED)]
    assert all("text_original" not in m for m in messages)  # never shown by the API

    rows = [m for m in stored(rt, cid) if m.role != "bot"]
    assert [m.text for m in rows] == [CARD_MAIL_REDACTED, ZH_PHONE_REDACTED, AGENT_REDACTED]
    assert rows[1].language == "zh"
    if keep:  # sealed at rest: the database alone does not reveal them
        assert [rt.sealer.unseal(m.text_original) for m in rows] == [CARD_MAIL, ZH_PHONE, AGENT]
        dump = raw_database_text(rt)
        assert "4111 1111 1111 1111" not in dump and "example.com" not in dump and "13800138000" not in dump
    else:
        assert [m.text_original for m in rows] == [None, None, None]
        dump = raw_database_text(rt)
        # the whole numbers: a fragment like "4111" can turn up in a random id or a float
        assert "4111 1111 1111 1111" not in dump and "4111111111111111" not in dump
        assert "example.com" not in dump and "13800138000" not in dump
        assert "7946 0958" not in dump


def test_the_models_see_only_the_redacted_text(setup):
    rt, client, _keep = setup
    cid = client.post("/v1/conversations", json={}).json()["id"]
    client.post(f"/v1/conversations/{cid}/messages", json={"text": "How long does shipping take? " + CARD_MAIL})
    classified = [t for batch in rt.sentiment.default.calls for t in batch]
    assert classified == ["How long does shipping take? " + CARD_MAIL_REDACTED]
    prompts = " ".join(m["content"] for call in rt.generator.calls for m in call)
    assert rt.generator.calls and CARD_MAIL_REDACTED in prompts
    assert "4111" not in prompts and "a.b@example.com" not in prompts


def test_text_without_pii_is_stored_as_it_is_and_no_original_is_kept(setup):
    rt, client, _keep = setup
    cid = client.post("/v1/conversations", json={}).json()["id"]
    client.post(f"/v1/conversations/{cid}/messages", json={"text": "  Order 12345 arrived today  "})
    [customer] = [m for m in stored(rt, cid) if m.role == "customer"]
    assert customer.text == "Order 12345 arrived today"  # an order number is not PII
    assert customer.text_original is None


def test_history_given_with_a_new_conversation_is_redacted(setup):
    rt, _client, keep = setup
    cid = rt.dialogue.create_conversation(history=[("user", CARD_MAIL), ("assistant", "Thanks, noted.")])
    rows = stored(rt, cid)
    assert [(m.role, m.text) for m in rows] == [("customer", CARD_MAIL_REDACTED), ("bot", "Thanks, noted.")]
    assert (rt.sealer.unseal(rows[0].text_original) if keep else rows[0].text_original) == (CARD_MAIL if keep else None)


def test_redaction_can_be_narrowed_by_the_operator(tmp_path):
    rt = make_runtime(tmp_path, pii_redact="email")
    try:
        cid = rt.dialogue.create_conversation()
        rt.dialogue.turn(cid, CARD_MAIL)
        [customer] = [m for m in stored(rt, cid) if m.role == "customer"]
        assert customer.text == "my card 4111 1111 1111 1111, mail me at [EMAIL]"
    finally:
        rt.close()
