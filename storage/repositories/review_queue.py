"""What the review queue (bot.review_queue) reads: recent customer turns, whether their
conversations were handed to a person, and the label feedback already on them.

A label correction on a bot (or agent) message labels the customer turn it answered, the
latest customer turn before it in its conversation, as storage.export reads it.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from storage.models import Conversation, Feedback, Message

CHUNK = 500  # ids per IN (...) list: well under SQLite's limit on bound parameters


@dataclass(frozen=True)
class LabelFeedback:
    """A label correction on a turn: `confirmed` (an agent vouched for it) or `pending` (a
    customer's, waiting for review)."""

    review_status: str
    labels: dict[str, str]  # task ("sentiment", "intent") -> the label it gives

    @property
    def tasks(self) -> frozenset[str]:
        return frozenset(self.labels)


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    values = sorted(set(values))
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def customer_turns(session: Session, *, limit: int, task: str | None = None, language: str | None = None,
                   message_id: str | None = None) -> list[Message]:
    """The newest `limit` customer turns with a prediction for `task` (any task when None),
    optionally of one language; or the customer turn `message_id`, predicted or not."""
    query = sa.select(Message).where(Message.role == "customer")
    if message_id is not None:
        query = query.where(Message.id == message_id)
    elif task == "sentiment":
        query = query.where(Message.sentiment_label.is_not(None))
    elif task == "intent":
        query = query.where(Message.intent_label.is_not(None))
    else:
        query = query.where(sa.or_(Message.sentiment_label.is_not(None), Message.intent_label.is_not(None)))
    if language is not None:
        query = query.where(Message.language == language)
    return list(session.scalars(query.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)))


def handed_over(session: Session, conversation_ids: Collection[str]) -> dict[str, str | None]:
    """Conversation id -> its escalation reason, for those handed to a person: escalated now,
    or an agent wrote in them (reason None once released back to the bot)."""
    found: dict[str, str | None] = {}
    for ids in _chunks(conversation_ids):
        for cid in session.scalars(sa.select(Message.conversation_id).distinct()
                                   .where(Message.conversation_id.in_(ids), Message.role == "agent")):
            found[cid] = None
        for cid, reason in session.execute(sa.select(Conversation.id, Conversation.escalation_reason)
                                           .where(Conversation.id.in_(ids), Conversation.status == "escalated")):
            found[cid] = reason
    return found


def label_feedback(session: Session, turns: Collection[Message]) -> dict[str, list[LabelFeedback]]:
    """Turn id -> the confirmed and pending label corrections on it or on the replies that
    answered it (rejected ones and bare ratings are left out)."""
    wanted = {t.id for t in turns}
    conversation_ids = {t.conversation_id for t in turns}
    starts: dict[str, list[tuple]] = {}  # conversation -> its customer turns (created_at, id), in order
    rows = []
    for ids in _chunks(conversation_ids):
        for cid, at, mid in session.execute(
                sa.select(Message.conversation_id, Message.created_at, Message.id)
                .where(Message.conversation_id.in_(ids), Message.role == "customer")):
            starts.setdefault(cid, []).append((at, mid))
        rows += session.execute(
            sa.select(Feedback.review_status, Feedback.corrected_sentiment, Feedback.corrected_intent,
                      Message.id, Message.role, Message.conversation_id, Message.created_at)
            .join(Message, Feedback.message_id == Message.id)
            .where(Message.conversation_id.in_(ids), Feedback.review_status.in_(("confirmed", "pending")),
                   sa.or_(Feedback.corrected_sentiment.is_not(None), Feedback.corrected_intent.is_not(None)))
            .order_by(Feedback.created_at, Feedback.id)).all()
    for turns_of in starts.values():
        turns_of.sort()
    out: dict[str, list[LabelFeedback]] = {}
    for status, sentiment, intent, mid, role, cid, at in rows:
        if role != "customer":  # the customer turn this reply answered
            earlier = starts.get(cid, [])[:bisect.bisect_left(starts.get(cid, []), (at, ""))]
            mid = earlier[-1][1] if earlier else None
        if mid in wanted:
            labels = {task: label for task, label in (("sentiment", sentiment), ("intent", intent)) if label}
            out.setdefault(mid, []).append(LabelFeedback(status, labels))
    return out
