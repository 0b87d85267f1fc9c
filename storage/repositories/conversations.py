"""Conversations and their messages (one aggregate: messages live and die with it).

Plain functions over a `Session`: they `flush()` so ids and defaults are filled in, and
leave `commit()` to the caller. Functions that look something up return None when it
does not exist.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.errors import InputError
from storage.models import check_choice, CONVERSATION_STATUSES, MESSAGE_ROLES, Conversation, Message, utcnow

MAX_PAGE_SIZE = 500


class InvalidCursor(InputError):
    """A pagination cursor that this module did not hand out."""


class ConversationPage(NamedTuple):
    items: list[Conversation]
    next_cursor: str | None  # None: this was the last page


def create_conversation(
    session: Session,
    *,
    channel: str | None = None,
    customer_ref: str | None = None,
    meta: dict[str, Any] | None = None,
    owner: str | None = None,
    access_token_hash: str | None = None,
) -> Conversation:
    """A new open conversation. `owner`: who created it (customer-scope callers see only
    their own); `access_token_hash`: sha256 of the secret a /chat link carries."""
    conversation = Conversation(
        status="open", channel=channel, customer_ref=customer_ref, meta=dict(meta or {}),
        owner=owner, access_token_hash=access_token_hash,
    )
    session.add(conversation)
    session.flush()
    return conversation


def get_conversation(session: Session, *, conversation_id: str) -> Conversation | None:
    return session.get(Conversation, conversation_id)


def _encode_cursor(conversation: Conversation) -> str:
    raw = f"{conversation.created_at.astimezone(UTC).isoformat()}|{conversation.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, conversation_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(created)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor(
            "invalid cursor; pass the next_cursor of the previous page unchanged"
        ) from exc
    if created_at.tzinfo is None or not conversation_id:
        raise InvalidCursor("invalid cursor; pass the next_cursor of the previous page unchanged")
    return created_at, conversation_id


def list_conversations(
    session: Session,
    *,
    status: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
    owner: str | None = None,
) -> ConversationPage:
    """Conversations, newest first, a page at a time.

    Keyset pagination on (created_at, id): pass the returned `next_cursor` back to get
    the next page; rows created meanwhile never shift or repeat pages. `since` keeps
    conversations created at or after that time (naive datetimes are taken as UTC);
    `owner` only those that owner created. Raises InvalidCursor for a cursor this function did not produce.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}; got {limit}")
    query = sa.select(Conversation)
    if status is not None:
        check_choice(status, CONVERSATION_STATUSES, "status")
        query = query.where(Conversation.status == status)
    if since is not None:
        query = query.where(Conversation.created_at >= since)
    if owner is not None:
        query = query.where(Conversation.owner == owner)
    if cursor is not None:
        created_at, conversation_id = _decode_cursor(cursor)
        query = query.where(
            sa.or_(
                Conversation.created_at < created_at,
                sa.and_(Conversation.created_at == created_at, Conversation.id < conversation_id),
            )
        )
    query = query.order_by(Conversation.created_at.desc(), Conversation.id.desc())
    rows = list(session.scalars(query.limit(limit + 1)))
    if len(rows) > limit:
        return ConversationPage(rows[:limit], _encode_cursor(rows[limit - 1]))
    return ConversationPage(rows, None)


def set_status(
    session: Session,
    *,
    conversation_id: str,
    status: str,
    escalation_reason: str | None = None,
) -> Conversation | None:
    """Move a conversation to `status`.

    Escalating records `escalation_reason`; going back to 'open' (an agent releases it)
    clears it; closing keeps whatever reason there was.
    """
    check_choice(status, CONVERSATION_STATUSES, "status")
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        return None
    conversation.status = status
    if status == "escalated":
        conversation.escalation_reason = escalation_reason
    elif status == "open":
        conversation.escalation_reason = None
    session.flush()
    return conversation


def delete_conversation(session: Session, *, conversation_id: str) -> bool:
    """Erase a conversation with its messages and their feedback. False if not found."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        return False
    session.delete(conversation)  # messages and feedback go by ON DELETE CASCADE
    session.flush()
    return True


def purge_conversations(session: Session, *, older_than: datetime) -> int:
    """Erase conversations with no activity (updated_at) since `older_than`, with their
    messages and feedback. Returns how many conversations went. This leaves export files
    alone: to erase a customer's data everywhere use storage.erasure.purge."""
    result = session.execute(
        sa.delete(Conversation)
        .where(Conversation.updated_at < older_than)
        .execution_options(synchronize_session="fetch")
    )
    session.flush()
    return result.rowcount


def add_message(
    session: Session,
    *,
    conversation_id: str,
    role: str,
    text: str,
    language: str | None = None,
    sentiment_label: str | None = None,
    sentiment_score: float | None = None,
    sentiment_scores: dict[str, float] | None = None,
    intent_label: str | None = None,
    intent_score: float | None = None,
    sources: Sequence[dict[str, Any]] | None = None,
    model_version: str | None = None,
    latency_ms: float | None = None,
    agent: str | None = None,
    text_original: str | None = None,
) -> Message | None:
    """Append a message to a conversation; None if the conversation does not exist.
    `text` is what is kept (PII-redacted by the caller); `text_original` only when the
    operator opted in to keeping originals.

    Messages of one conversation get strictly increasing `created_at`, so ordering by
    time is the order they were added even when the clock is coarse or steps back.
    """
    check_choice(role, MESSAGE_ROLES, "role")
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        return None
    now = utcnow()
    last = session.scalar(
        sa.select(sa.func.max(Message.created_at)).where(Message.conversation_id == conversation_id)
    )
    if last is not None:
        last = last.replace(tzinfo=UTC) if last.tzinfo is None else last
        if now <= last:
            now = last + timedelta(microseconds=1)
    message = Message(
        conversation_id=conversation_id,
        role=role,
        text=text,
        text_original=text_original,
        language=language,
        sentiment_label=sentiment_label,
        sentiment_score=sentiment_score,
        sentiment_scores=dict(sentiment_scores) if sentiment_scores is not None else None,
        intent_label=intent_label,
        intent_score=intent_score,
        sources=[dict(s) for s in sources or ()],
        model_version=model_version,
        latency_ms=latency_ms,
        agent=agent,
        created_at=now,
    )
    session.add(message)
    conversation.updated_at = now
    session.flush()
    return message


def get_message(session: Session, *, message_id: str) -> Message | None:
    return session.get(Message, message_id)


def list_messages(
    session: Session, *, conversation_id: str, limit: int | None = None
) -> list[Message]:
    """A conversation's messages, oldest first; with `limit`, the last `limit` of them
    (still oldest first), which is what a chat prompt needs. Empty if not found."""
    query = sa.select(Message).where(Message.conversation_id == conversation_id)
    if limit is None:
        return list(session.scalars(query.order_by(Message.created_at, Message.id)))
    newest = query.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)
    return list(reversed(list(session.scalars(newest))))
