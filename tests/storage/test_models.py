"""What the schema itself guarantees, whatever code writes to it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from storage.models import Base, Conversation, utcnow
from storage.repositories import conversations


def _valid_row(session, table: str, key: str) -> dict:
    """A row that the table accepts; `key` makes its unique columns unique."""
    if table in ("messages", "feedback"):
        conversation = conversations.create_conversation(session)
        message = conversations.add_message(
            session, conversation_id=conversation.id, role="customer", text="parent"
        )
    now = utcnow()
    rows = {
        "conversations": {"status": "open", "metadata": {}, "updated_at": now},
        "messages": lambda: {
            "conversation_id": conversation.id, "role": "customer", "text": "t", "sources": []
        },
        "feedback": lambda: {"message_id": message.id, "rating": "up", "fingerprint": key},
        "model_versions": {"task": "sentiment", "name": key, "status": "candidate", "metrics": {}},
        "finetune_runs": {
            "task": "chat", "kind": "chat", "status": "running", "config": {}, "data": {},
            "metrics": {}, "progress": 0.5, "started_at": now,
        },
        "api_keys": {"name": key, "key_hash": key, "prefix": "p", "scope": "customer"},
        "predictions": {
            "task": "sentiment", "model_version": "v", "label": "l", "score": 1.0, "text_chars": 1
        },
    }
    row = rows[table]
    row = row() if callable(row) else row
    if "created_at" in Base.metadata.tables[table].c:
        row["created_at"] = now
    return {"id": key, **row}


@pytest.mark.parametrize(
    ("table", "bad"),
    [
        ("conversations", {"status": "archived"}),
        ("messages", {"role": "system"}),
        ("feedback", {"rating": "meh"}),
        ("model_versions", {"status": "deployed"}),
        ("model_versions", {"task": "vision"}),
        ("finetune_runs", {"kind": "rlhf"}),
        ("finetune_runs", {"progress": 1.5}),
        ("api_keys", {"scope": "root"}),
        ("predictions", {"task": "chat"}),
    ],
)
def test_check_constraints_reject_values_outside_the_vocabulary(session, table, bad):
    insert = Base.metadata.tables[table].insert()
    session.execute(insert, _valid_row(session, table, "good"))  # the baseline is accepted
    session.flush()
    with pytest.raises(IntegrityError):
        session.execute(insert, {**_valid_row(session, table, "bad"), **bad})
        session.flush()
    session.rollback()


def test_naive_datetimes_are_taken_as_utc(session):
    conversation = conversations.create_conversation(session)
    conversation.created_at = datetime(2024, 6, 1, 8, 0)  # naive
    session.commit()
    session.expunge_all()
    loaded = session.get(Conversation, conversation.id)
    assert loaded.created_at == datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
