from __future__ import annotations

import pytest
import sqlalchemy as sa

from storage.models import Feedback
from storage.repositories import conversations
from storage.repositories import feedback as feedback_repo
from storage.repositories.feedback import DuplicateFeedback


@pytest.fixture
def bot_message(session):
    conversation = conversations.create_conversation(session)
    conversations.add_message(session, conversation_id=conversation.id, role="customer", text="hi")
    message = conversations.add_message(
        session, conversation_id=conversation.id, role="bot", text="Hello! How can I help?"
    )
    session.commit()
    return message


def test_add_feedback_stores_the_payload(session, bot_message):
    row = feedback_repo.add_feedback(
        session,
        message_id=bot_message.id,
        rating="down",
        comment="too generic",
        corrected_reply="Hi! Is this about your order #123?",
        corrected_sentiment="neutral",
    )
    session.commit()
    session.expunge_all()

    loaded = feedback_repo.get_feedback(session, feedback_id=row.id)
    assert loaded.message_id == bot_message.id
    assert (loaded.rating, loaded.comment) == ("down", "too generic")
    assert loaded.corrected_reply == "Hi! Is this about your order #123?"
    assert loaded.corrected_sentiment == "neutral"
    assert len(loaded.fingerprint) == 64
    assert loaded.created_at.tzinfo is not None


def test_feedback_on_missing_message_is_none(session):
    assert feedback_repo.add_feedback(session, message_id="nope", rating="up") is None
    assert session.scalar(sa.select(sa.func.count()).select_from(Feedback)) == 0


def test_replayed_feedback_raises_duplicate_and_keeps_the_transaction_usable(
    session, bot_message
):
    first = feedback_repo.add_feedback(
        session, message_id=bot_message.id, rating="up", comment="great"
    )
    with pytest.raises(DuplicateFeedback) as raised:
        feedback_repo.add_feedback(session, message_id=bot_message.id, rating="up", comment="great")
    assert raised.value.feedback_id == first.id

    # The session was not poisoned: more work and the commit still go through.
    other = feedback_repo.add_feedback(session, message_id=bot_message.id, rating="down")
    session.commit()
    session.expunge_all()
    stored = {f.id for f in feedback_repo.list_feedback(session, message_id=bot_message.id)}
    assert stored == {first.id, other.id}


def test_replay_is_detected_across_sessions(session_factory, bot_message):
    with session_factory() as session:
        first = feedback_repo.add_feedback(session, message_id=bot_message.id, rating="up")
        session.commit()
    with session_factory() as session:
        with pytest.raises(DuplicateFeedback) as raised:
            feedback_repo.add_feedback(session, message_id=bot_message.id, rating="up")
        assert raised.value.feedback_id == first.id


def test_different_payloads_are_not_replays(session, bot_message):
    variants = [
        {"rating": "up"},
        {"rating": "down"},
        {"rating": "up", "comment": "thanks"},
        {"rating": "up", "corrected_reply": "x"},
        {"rating": "up", "corrected_sentiment": "positive"},
    ]
    ids = [
        feedback_repo.add_feedback(session, message_id=bot_message.id, **variant).id
        for variant in variants
    ]
    assert len(set(ids)) == len(variants)


def test_fingerprint_is_stable_and_field_sensitive():
    base = dict(
        message_id="m1", rating="up", comment=None, corrected_reply=None, corrected_sentiment=None
    )
    assert feedback_repo.fingerprint(**base) == feedback_repo.fingerprint(**base)
    # Moving text between fields changes it (no naive concatenation).
    a = feedback_repo.fingerprint(**{**base, "comment": "ab", "corrected_reply": None})
    b = feedback_repo.fingerprint(**{**base, "comment": None, "corrected_reply": "ab"})
    assert a != b


def test_add_feedback_rejects_unknown_rating(session, bot_message):
    with pytest.raises(ValueError, match="rating"):
        feedback_repo.add_feedback(session, message_id=bot_message.id, rating="meh")


def test_list_feedback_filters(session, bot_message):
    up = feedback_repo.add_feedback(session, message_id=bot_message.id, rating="up")
    down = feedback_repo.add_feedback(session, message_id=bot_message.id, rating="down")
    assert [f.id for f in feedback_repo.list_feedback(session)] == [up.id, down.id]
    assert [f.id for f in feedback_repo.list_feedback(session, rating="down")] == [down.id]
    assert [f.id for f in feedback_repo.list_feedback(session, limit=1)] == [up.id]
    assert feedback_repo.list_feedback(session, message_id="nope") == []
