"""Feedback on bot replies: thumbs up/down, comments and corrections (training data).

Replays are detected, not stored twice: every feedback row carries the sha256
`fingerprint` of its payload under a unique constraint. `add_feedback` raises
`DuplicateFeedback` (with the id of the row already stored) for a replay, and returns
None when the message does not exist. The insert uses ON CONFLICT DO NOTHING, so even
two concurrent replays leave the caller's transaction usable.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.errors import ConflictError
from storage.models import FEEDBACK_RATINGS, FEEDBACK_REVIEW_STATUSES, Feedback, Message, check_choice, new_id, utcnow


class DuplicateFeedback(ConflictError):
    """The same feedback (same message, rating, comment and corrections) was already
    recorded. `feedback_id` is the stored one; an API may answer 409 or return it."""

    def __init__(self, feedback_id: str):
        super().__init__(f"this feedback was already recorded as {feedback_id}")
        self.feedback_id = feedback_id


def fingerprint(
    *,
    message_id: str,
    rating: str,
    comment: str | None,
    corrected_reply: str | None,
    corrected_sentiment: str | None,
    corrected_intent: str | None = None,
) -> str:
    """sha256 hex of the canonical JSON of a feedback payload (fields added later enter
    only when set, so earlier fingerprints stay valid)."""
    payload = {
        "message_id": message_id,
        "rating": rating,
        "comment": comment,
        "corrected_reply": corrected_reply,
        "corrected_sentiment": corrected_sentiment,
    }
    if corrected_intent is not None:
        payload["corrected_intent"] = corrected_intent
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _insert_ignoring_duplicates(session: Session):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(Feedback).on_conflict_do_nothing(index_elements=["fingerprint"])
    if dialect == "sqlite":
        return sqlite.insert(Feedback).on_conflict_do_nothing(index_elements=["fingerprint"])
    raise NotImplementedError(f"feedback storage supports sqlite and postgresql, not {dialect}")


def add_feedback(
    session: Session,
    *,
    message_id: str,
    rating: str,
    comment: str | None = None,
    corrected_reply: str | None = None,
    corrected_sentiment: str | None = None,
    corrected_intent: str | None = None,
    original: dict | None = None,
    submitted_by: str | None = None,
    review_status: str = "confirmed",
    confirmed_by: str | None = None,
) -> Feedback | None:
    """Record feedback on a message. `original`: the comment / corrected reply before PII
    redaction, stored only when the operator opted in (not part of the fingerprint).
    `submitted_by`, `review_status`, `confirmed_by`: who sent it and whether it may teach
    the models (storage.models.FEEDBACK_REVIEW_STATUSES); the service decides.

    Returns the new row, or None if the message does not exist.
    Raises DuplicateFeedback if exactly this feedback was recorded before.
    """
    if rating not in FEEDBACK_RATINGS:
        raise ValueError(f"rating must be one of {', '.join(FEEDBACK_RATINGS)}; got {rating!r}")
    check_choice(review_status, FEEDBACK_REVIEW_STATUSES, "review_status")
    if session.get(Message, message_id) is None:
        return None
    values = {
        "message_id": message_id,
        "rating": rating,
        "comment": comment,
        "corrected_reply": corrected_reply,
        "corrected_sentiment": corrected_sentiment,
        "corrected_intent": corrected_intent,
    }
    digest = fingerprint(**values)
    session.flush()  # the message must be in the database before the Core insert
    inserted_id = session.scalar(
        _insert_ignoring_duplicates(session)
        .values(id=new_id(), fingerprint=digest, created_at=utcnow(), original=original, submitted_by=submitted_by,
                review_status=review_status, confirmed_by=confirmed_by, **values)
        .returning(Feedback.id)
    )
    if inserted_id is None:
        existing = session.scalar(sa.select(Feedback.id).where(Feedback.fingerprint == digest))
        raise DuplicateFeedback(existing)
    return session.get(Feedback, inserted_id)


def get_feedback(session: Session, *, feedback_id: str) -> Feedback | None:
    return session.get(Feedback, feedback_id)


def list_feedback(
    session: Session,
    *,
    message_id: str | None = None,
    rating: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    review_status: str | None = None,
) -> list[Feedback]:
    """Feedback, oldest first, optionally for one message, one rating, one review status
    or since a time."""
    query = sa.select(Feedback)
    if review_status is not None:
        query = query.where(Feedback.review_status == review_status)
    if message_id is not None:
        query = query.where(Feedback.message_id == message_id)
    if rating is not None:
        query = query.where(Feedback.rating == rating)
    if since is not None:
        query = query.where(Feedback.created_at >= since)
    query = query.order_by(Feedback.created_at, Feedback.id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def set_review(session: Session, *, feedback: Feedback, status: str, by: str) -> Feedback:
    """An agent's decision on a customer's correction: confirmed (it may teach the
    models) or rejected (it never will)."""
    check_choice(status, ("confirmed", "rejected"), "review decision")
    feedback.review_status = status
    feedback.confirmed_by = by if status == "confirmed" else None
    feedback.reviewed_at = utcnow()
    session.flush()
    return feedback
