"""Feedback on the bot's work: 👍/👎, a comment, a corrected reply, corrected labels.

What customers and agents say here becomes training data (storage.export → the periodic
`supportbot retrain`). Free text is PII-redacted before it is stored; the original is
kept only when the operator opts in (SUPPORTBOT_PII_KEEP_ORIGINAL).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import sessionmaker

from bot.errors import InputError, NotFoundError
from bot.guard import check_message
from bot.redaction import Redactor
from bot.sentiment import SENTIMENT_LABELS, normalise_label
from storage.models import Message
from storage.repositories import feedback as repo

MAX_COMMENT_CHARS = 2000


@dataclass
class FeedbackService:
    sessions: sessionmaker
    redactor: Redactor
    keep_original: bool = False
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
               corrected_intent: str | None = None) -> str:
        """Store feedback on a message; returns its id. NotFoundError for an unknown
        message, ConflictError (DuplicateFeedback) for a replay, InputError otherwise."""
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
        if self.keep_original and (comment != comment_original or corrected_reply != reply_original):
            original = {"comment": comment_original, "corrected_reply": reply_original}
        with self.sessions.begin() as session:
            message = session.get(Message, message_id)
            if message is None:
                raise NotFoundError(f"no message {message_id!r}")
            if corrected_reply is not None and message.role != "bot":
                raise InputError("corrected_reply applies to the bot's replies only")
            row = repo.add_feedback(session, message_id=message_id, rating=rating, comment=comment,
                                    corrected_reply=corrected_reply, corrected_sentiment=corrected_sentiment,
                                    corrected_intent=corrected_intent, original=original)
            return row.id
