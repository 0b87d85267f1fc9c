"""Erasing a customer's data everywhere: the conversation, its messages and feedback, and
its rows in every export file still on disk (storage.export)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from storage.export import scrub_exports
from storage.models import Conversation
from storage.repositories import conversations as repo


def erase_conversation(session: Session, *, conversation_id: str) -> bool:
    """False if there is no such conversation. Export files are rewritten first: if that
    fails, the transaction is rolled back by the caller and nothing is half-erased in
    the database."""
    if repo.get_conversation(session, conversation_id=conversation_id) is None:
        return False
    scrub_exports(session, {conversation_id})
    return repo.delete_conversation(session, conversation_id=conversation_id)


def purge(session: Session, *, older_than: datetime) -> int:
    """Erase every conversation with no activity since `older_than`; returns how many."""
    ids = set(session.scalars(sa.select(Conversation.id).where(Conversation.updated_at < older_than)))
    scrub_exports(session, ids)
    for conversation_id in ids:
        repo.delete_conversation(session, conversation_id=conversation_id)
    return len(ids)
