"""Feedback on the bot's work: 👍/👎, a comment, a corrected reply, corrected labels.

Who teaches the models: feedback from staff (agent or admin keys, staff UI users, the
operator) is `confirmed` and becomes training data (storage.export → the periodic
`supportbot retrain`). A customer's corrections (a customer-scope key, the open /chat
page) are stored `pending`: they are a signal until an agent confirms them in the review
(`review`), and never enter an export before that; a customer's bare 👍/👎 is a `signal`
only. Customers can rate only messages of their own conversations.

Free text is PII-redacted before it is stored; the original is kept only when the
operator opts in (SUPPORTBOT_PII_KEEP_ORIGINAL), sealed (bot.sealing).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import sessionmaker

from bot.callers import OPERATOR, Caller
from core.errors import ConflictError, InputError, NotFoundError
from bot.guard import check_message
from bot.redaction import Redactor
from bot.sealing import Sealer
from bot.sentiment import SENTIMENT_LABELS, normalise_label
from storage.models import Feedback, Message
from storage.repositories import feedback as repo

MAX_COMMENT_CHARS = 2000


@dataclass
class FeedbackService:
    sessions: sessionmaker
    redactor: Redactor
    sealer: Sealer | None = None  # keeps the text before redaction, sealed (operator opt-in)
    max_text_chars: int = 5000
    intent_labels: tuple[str, ...] | None = None  # None: any label is accepted

    def _clean(self, value: str | None, what: str, max_chars: int) -> tuple[str | None, str | None]:
        """(redacted text, original) of an optional free-text field."""
        if value is None:
            return None, None
        value = check_message(value, max_chars=max_chars, what=what)
        return self.redactor.redact(value).text, value

    def record(self, *, message_id: str, rating: str, comment: str | None = None,
               corrected_reply: str | None = None, corrected_sentiment: str | None = None,
               corrected_intent: str | None = None, caller: Caller = OPERATOR,
               conversation_id: str | None = None) -> str:
        """Store feedback on a message; returns its id. `caller`: who sends it (its scope
        decides whether the corrections teach the models at once or wait for review);
        `conversation_id`: the message must belong to it (the /chat page passes the
        conversation its link opened). NotFoundError for an unknown message (or one the
        caller may not see), ConflictError (DuplicateFeedback) for a replay, InputError
        otherwise."""
        if rating not in ("up", "down"):
            raise InputError(f"rating must be 'up' or 'down'; got {rating!r}")
        if corrected_sentiment is not None:
            corrected_sentiment = normalise_label(corrected_sentiment)
            if corrected_sentiment not in SENTIMENT_LABELS:
                raise InputError(f"corrected_sentiment must be one of {', '.join(SENTIMENT_LABELS)}")
        if corrected_intent is not None:
            corrected_intent = corrected_intent.strip()
            if not corrected_intent or (self.intent_labels and corrected_intent not in self.intent_labels):
                raise InputError("corrected_intent must be one of the intent model's labels")
        comment, comment_original = self._clean(comment, "comment", MAX_COMMENT_CHARS)
        corrected_reply, reply_original = self._clean(corrected_reply, "corrected_reply", self.max_text_chars)
        original = None
        if self.sealer is not None and (comment != comment_original or corrected_reply != reply_original):
            original = {"comment": self.sealer.seal(comment_original),
                        "corrected_reply": self.sealer.seal(reply_original)}
        corrects = any(v is not None for v in (corrected_reply, corrected_sentiment, corrected_intent))
        if caller.is_staff:
            review_status, confirmed_by = "confirmed", caller.name
        else:
            review_status, confirmed_by = ("pending" if corrects else "signal"), None
        with self.sessions.begin() as session:
            message = session.get(Message, message_id)
            if message is None or not self._may_rate(caller, message, conversation_id):
                raise NotFoundError(f"no message {message_id!r}")
            if corrected_reply is not None and message.role != "bot":
                raise InputError("corrected_reply applies to the bot's replies only")
            row = repo.add_feedback(session, message_id=message_id, rating=rating, comment=comment,
                                    corrected_reply=corrected_reply, corrected_sentiment=corrected_sentiment,
                                    corrected_intent=corrected_intent, original=original,
                                    submitted_by=caller.owner, review_status=review_status,
                                    confirmed_by=confirmed_by)
            return row.id

    @staticmethod
    def _may_rate(caller: Caller, message: Message, conversation_id: str | None) -> bool:
        if conversation_id is not None and message.conversation_id != conversation_id:
            return False
        return caller.may_access(message.conversation.owner)

    # -- the agents' review of customers' corrections ---------------------------------

    def pending(self, *, limit: int = 50) -> list[dict]:
        """Customers' corrections waiting for an agent, oldest first, with what they correct."""
        with self.sessions() as session:
            rows = repo.list_feedback(session, review_status="pending", limit=limit)
            return [review_item(fb) for fb in rows]

    def review(self, feedback_id: str, *, decision: str, caller: Caller) -> dict:
        """An agent confirms a customer's correction (it may now teach the models) or
        rejects it (it never will). Only staff review; only pending rows can be decided."""
        if not caller.is_staff:
            raise InputError("only agents and admins review corrections")
        if decision not in ("confirm", "reject"):
            raise InputError(f"decision must be 'confirm' or 'reject'; got {decision!r}")
        with self.sessions.begin() as session:
            fb = repo.get_feedback(session, feedback_id=feedback_id)
            if fb is None:
                raise NotFoundError(f"no feedback {feedback_id!r}")
            if fb.review_status != "pending":
                raise ConflictError(f"feedback {feedback_id} is {fb.review_status}, not pending review")
            repo.set_review(session, feedback=fb, status="confirmed" if decision == "confirm" else "rejected",
                            by=caller.name)
            return review_item(fb)


def review_item(fb: Feedback) -> dict:
    """What an agent needs to decide on a correction: the message, the correction, who sent it."""
    message = fb.message
    return {"id": fb.id, "message_id": fb.message_id, "conversation_id": message.conversation_id,
            "role": message.role, "text": message.text, "rating": fb.rating, "comment": fb.comment,
            "corrected_reply": fb.corrected_reply, "corrected_sentiment": fb.corrected_sentiment,
            "corrected_intent": fb.corrected_intent, "submitted_by": fb.submitted_by,
            "review_status": fb.review_status, "confirmed_by": fb.confirmed_by,
            "created_at": fb.created_at.isoformat()}
