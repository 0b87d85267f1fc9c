from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from storage.models import Conversation, Feedback, Message
from storage.repositories import conversations
from storage.repositories import feedback as feedback_repo
from storage.repositories.conversations import InvalidCursor

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def _count(session, model) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(model))


def test_create_and_get_conversation(session):
    created = conversations.create_conversation(
        session, channel="web", customer_ref="cust-7", meta={"plan": "pro"}
    )
    session.commit()
    session.expunge_all()

    loaded = conversations.get_conversation(session, conversation_id=created.id)
    assert loaded is not None
    assert len(loaded.id) == 32 and int(loaded.id, 16) >= 0
    assert (loaded.status, loaded.channel, loaded.customer_ref) == ("open", "web", "cust-7")
    assert loaded.meta == {"plan": "pro"}
    assert loaded.escalation_reason is None
    assert loaded.created_at.tzinfo is not None and loaded.updated_at >= loaded.created_at


def test_get_missing_conversation_is_none(session):
    assert conversations.get_conversation(session, conversation_id="nope") is None


def _make_conversations(session, created_ats, status="open"):
    made = []
    for created_at in created_ats:
        conversation = conversations.create_conversation(session)
        conversation.created_at = created_at
        conversation.status = status
        made.append(conversation)
    session.flush()
    return made


def test_list_conversations_pages_through_everything_newest_first(session):
    # Seven conversations; three share one timestamp so the id breaks the tie.
    times = [T0 + timedelta(minutes=m) for m in (0, 1, 1, 1, 2, 3, 4)]
    made = _make_conversations(session, times)
    expected = sorted(made, key=lambda c: (c.created_at, c.id), reverse=True)

    seen, cursor, pages = [], None, 0
    while True:
        page = conversations.list_conversations(session, limit=3, cursor=cursor)
        seen.extend(page.items)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [c.id for c in seen] == [c.id for c in expected]
    assert pages == 3  # 3 + 3 + 1


def test_list_conversations_pages_do_not_shift_when_rows_are_added(session):
    made = _make_conversations(session, [T0 + timedelta(minutes=m) for m in range(4)])
    first = conversations.list_conversations(session, limit=2)
    assert [c.id for c in first.items] == [made[3].id, made[2].id]

    _make_conversations(session, [T0 + timedelta(hours=1)])  # newer than everything

    second = conversations.list_conversations(session, limit=2, cursor=first.next_cursor)
    assert [c.id for c in second.items] == [made[1].id, made[0].id]
    assert second.next_cursor is None


def test_list_conversations_exact_multiple_of_limit_ends_with_no_cursor(session):
    _make_conversations(session, [T0 + timedelta(minutes=m) for m in range(4)])
    first = conversations.list_conversations(session, limit=2)
    second = conversations.list_conversations(session, limit=2, cursor=first.next_cursor)
    assert len(second.items) == 2
    assert second.next_cursor is None


def test_list_conversations_filters_by_status_and_since(session):
    old_open = _make_conversations(session, [T0], status="open")[0]
    new_open = _make_conversations(session, [T0 + timedelta(days=2)], status="open")[0]
    escalated = _make_conversations(session, [T0 + timedelta(days=3)], status="escalated")[0]

    by_status = conversations.list_conversations(session, status="open")
    assert [c.id for c in by_status.items] == [new_open.id, old_open.id]

    since = conversations.list_conversations(session, since=T0 + timedelta(days=1))
    assert [c.id for c in since.items] == [escalated.id, new_open.id]

    # A naive `since` is taken as UTC.
    naive = conversations.list_conversations(session, since=datetime(2024, 3, 2, 12, 0))
    assert [c.id for c in naive.items] == [escalated.id, new_open.id]

    both = conversations.list_conversations(
        session, status="open", since=T0 + timedelta(days=1)
    )
    assert [c.id for c in both.items] == [new_open.id]


@pytest.mark.parametrize("cursor", ["garbage!", "", "bm90LWEtY3Vyc29y", "MjAyNHxhYmM"])
def test_list_conversations_rejects_a_forged_cursor(session, cursor):
    with pytest.raises(InvalidCursor, match="cursor"):
        conversations.list_conversations(session, cursor=cursor)


@pytest.mark.parametrize("limit", [0, -1, 501])
def test_list_conversations_rejects_bad_limits(session, limit):
    with pytest.raises(ValueError, match="limit"):
        conversations.list_conversations(session, limit=limit)


def test_set_status_escalate_release_close(session):
    conversation = conversations.create_conversation(session)

    escalated = conversations.set_status(
        session, conversation_id=conversation.id, status="escalated", escalation_reason="angry"
    )
    assert (escalated.status, escalated.escalation_reason) == ("escalated", "angry")

    released = conversations.set_status(session, conversation_id=conversation.id, status="open")
    assert (released.status, released.escalation_reason) == ("open", None)

    conversations.set_status(
        session, conversation_id=conversation.id, status="escalated", escalation_reason="legal"
    )
    closed = conversations.set_status(session, conversation_id=conversation.id, status="closed")
    assert (closed.status, closed.escalation_reason) == ("closed", "legal")

    session.commit()
    session.expunge_all()
    assert conversations.get_conversation(session, conversation_id=conversation.id).status == (
        "closed"
    )


def test_set_status_of_missing_conversation_is_none(session):
    assert conversations.set_status(session, conversation_id="nope", status="closed") is None


def test_set_status_rejects_unknown_status(session):
    conversation = conversations.create_conversation(session)
    with pytest.raises(ValueError, match="status"):
        conversations.set_status(session, conversation_id=conversation.id, status="archived")


def test_add_message_stores_all_fields_and_touches_the_conversation(session):
    conversation = conversations.create_conversation(session)
    before = conversation.updated_at

    message = conversations.add_message(
        session,
        conversation_id=conversation.id,
        role="bot",
        text="Your parcel ships tomorrow.",
        language="en",
        sentiment_label="neutral",
        sentiment_score=0.6,
        sentiment_scores={"negative": 0.1, "neutral": 0.6, "positive": 0.3},
        intent_label="delivery",
        intent_score=0.9,
        sources=[{"id": "kb-1", "title": "Shipping", "score": 0.72}],
        model_version="smollm2-135m",
        latency_ms=123.4,
    )
    session.commit()
    message_id = message.id
    session.expunge_all()

    loaded = conversations.get_message(session, message_id=message_id)
    assert loaded.conversation_id == conversation.id
    assert (loaded.role, loaded.text, loaded.language) == ("bot", "Your parcel ships tomorrow.", "en")
    assert loaded.sentiment_scores == {"negative": 0.1, "neutral": 0.6, "positive": 0.3}
    assert loaded.sources == [{"id": "kb-1", "title": "Shipping", "score": 0.72}]
    assert (loaded.model_version, loaded.latency_ms, loaded.agent) == ("smollm2-135m", 123.4, None)
    assert conversations.get_conversation(session, conversation_id=conversation.id).updated_at > (
        before
    )


def test_add_message_defaults_are_empty_not_null(session):
    conversation = conversations.create_conversation(session)
    message = conversations.add_message(
        session, conversation_id=conversation.id, role="customer", text="hi"
    )
    session.commit()
    session.expunge_all()
    loaded = conversations.get_message(session, message_id=message.id)
    assert loaded.sources == []
    assert loaded.sentiment_scores is None
    # Stored as SQL NULL, not the JSON text 'null'.
    assert session.scalar(
        sa.select(sa.func.count()).where(Message.sentiment_scores.is_(None))
    ) == 1


def test_add_message_to_missing_conversation_is_none(session):
    assert (
        conversations.add_message(session, conversation_id="nope", role="customer", text="hi")
        is None
    )


def test_add_message_rejects_unknown_role(session):
    conversation = conversations.create_conversation(session)
    with pytest.raises(ValueError, match="role"):
        conversations.add_message(
            session, conversation_id=conversation.id, role="system", text="hi"
        )


def test_messages_keep_insertion_order_even_if_the_clock_stands_still(session, monkeypatch):
    conversation = conversations.create_conversation(session)
    monkeypatch.setattr(conversations, "utcnow", lambda: T0)  # a frozen clock
    texts = [f"turn {i}" for i in range(6)]
    for i, text in enumerate(texts):
        role = "customer" if i % 2 == 0 else "bot"
        conversations.add_message(session, conversation_id=conversation.id, role=role, text=text)
    session.commit()
    session.expunge_all()

    messages = conversations.list_messages(session, conversation_id=conversation.id)
    assert [m.text for m in messages] == texts
    stamps = [m.created_at for m in messages]
    assert stamps == sorted(set(stamps))  # strictly increasing

    last_two = conversations.list_messages(session, conversation_id=conversation.id, limit=2)
    assert [m.text for m in last_two] == texts[-2:]


def test_list_messages_of_missing_conversation_is_empty(session):
    assert conversations.list_messages(session, conversation_id="nope") == []


def _conversation_with_messages_and_feedback(session):
    conversation = conversations.create_conversation(session)
    question = conversations.add_message(
        session, conversation_id=conversation.id, role="customer", text="where is it?"
    )
    answer = conversations.add_message(
        session, conversation_id=conversation.id, role="bot", text="on its way"
    )
    feedback_repo.add_feedback(session, message_id=answer.id, rating="down", comment="vague")
    return conversation, [question.id, answer.id]


def test_delete_conversation_erases_its_messages_and_feedback(session):
    doomed, doomed_messages = _conversation_with_messages_and_feedback(session)
    kept, kept_messages = _conversation_with_messages_and_feedback(session)
    session.commit()

    assert conversations.delete_conversation(session, conversation_id=doomed.id) is True
    session.commit()
    session.expunge_all()

    assert conversations.get_conversation(session, conversation_id=doomed.id) is None
    remaining = set(session.scalars(sa.select(Message.id)))
    assert remaining == set(kept_messages)
    assert set(session.scalars(sa.select(Feedback.message_id))) == {kept_messages[1]}
    assert conversations.get_conversation(session, conversation_id=kept.id) is not None
    assert not remaining & set(doomed_messages)


def test_database_cascades_without_the_orm(session):
    """ON DELETE CASCADE is in the schema (and SQLite enforces foreign keys)."""
    conversation, _ = _conversation_with_messages_and_feedback(session)
    session.commit()
    session.execute(sa.text("DELETE FROM conversations WHERE id = :id"), {"id": conversation.id})
    session.commit()
    assert _count(session, Message) == 0
    assert _count(session, Feedback) == 0


def test_delete_missing_conversation_is_false(session):
    assert conversations.delete_conversation(session, conversation_id="nope") is False


def test_purge_conversations_by_last_activity(session):
    stale, _ = _conversation_with_messages_and_feedback(session)
    fresh, fresh_messages = _conversation_with_messages_and_feedback(session)
    stale.updated_at = T0
    session.commit()

    purged = conversations.purge_conversations(session, older_than=T0 + timedelta(days=1))
    session.commit()

    assert purged == 1
    assert set(session.scalars(sa.select(Conversation.id))) == {fresh.id}
    assert set(session.scalars(sa.select(Message.id))) == set(fresh_messages)
    assert _count(session, Feedback) == 1
