"""The schema is built and changed only by Alembic; test both upgrade paths.

- from an empty database to head;
- from 0001 with rows in it to head: the rows survive and still behave (cascades).
  Rows are written with plain SQL against the tables as they were at 0001, so this test
  keeps working, unchanged, as 0002, 0003... are appended.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import storage
from storage import db
from storage.models import Base
from storage.repositories import api_keys, conversations, feedback, model_versions

REPO_ROOT = Path(storage.__file__).resolve().parents[1]


def _tables(url: str) -> set[str]:
    engine = db.make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _revisions_base_to_head() -> list:
    scripts = ScriptDirectory.from_config(db.alembic_config("sqlite://"))
    return list(reversed(list(scripts.walk_revisions())))


def test_revisions_are_numbered_in_order_and_linear():
    revisions = _revisions_base_to_head()
    assert [r.revision for r in revisions] == [f"{i:04d}" for i in range(1, len(revisions) + 1)]
    for previous, current in zip(revisions, revisions[1:]):
        assert current.down_revision == previous.revision
    for revision in revisions:
        assert Path(revision.path).name.startswith(f"{revision.revision}_")


def test_upgrade_from_empty_builds_the_schema_of_the_models(database_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the packaged migrations are found from any directory
    assert db.current_revision(database_url) is None

    db.upgrade(database_url)

    assert db.current_revision(database_url) == db.head_revision()
    assert _tables(database_url) == set(Base.metadata.tables) | {"alembic_version"}
    engine = db.make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == [], "models and migrations disagree; add a revision"


def test_upgrade_is_idempotent(database_url):
    db.upgrade(database_url)
    db.upgrade(database_url)
    assert db.current_revision(database_url) == db.head_revision()


T0 = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
ROWS_AT_0001 = {
    "conversations": [
        {
            "id": "c1",
            "status": "escalated",
            "channel": "web",
            "customer_ref": "cust-1",
            "metadata": {"plan": "pro", "tags": ["vip"]},
            "escalation_reason": "angry customer",
            "created_at": T0,
            "updated_at": T0,
        }
    ],
    "messages": [
        {
            "id": "m1",
            "conversation_id": "c1",
            "role": "customer",
            "text": "Mein Paket ist nicht angekommen 😠",
            "language": "de",
            "sentiment_label": "negative",
            "sentiment_score": 0.93,
            "sentiment_scores": {"negative": 0.93, "neutral": 0.05, "positive": 0.02},
            "intent_label": "delivery",
            "intent_score": 0.8,
            "sources": [],
            "model_version": None,
            "latency_ms": None,
            "agent": None,
            "created_at": T0,
        },
        {
            "id": "m2",
            "conversation_id": "c1",
            "role": "bot",
            "text": "Sorry to hear that.",
            "language": "en",
            "sentiment_label": None,
            "sentiment_score": None,
            "sentiment_scores": None,
            "intent_label": None,
            "intent_score": None,
            "sources": [{"id": "kb-1", "title": "Shipping", "score": 0.7}],
            "model_version": "smollm2-135m",
            "latency_ms": 812.5,
            "agent": None,
            "created_at": T0.replace(second=6),
        },
    ],
    "feedback": [
        {
            "id": "f1",
            "message_id": "m2",
            "rating": "down",
            "comment": "not helpful",
            "corrected_reply": "Let me check the tracking number.",
            "corrected_sentiment": None,
            "fingerprint": "0" * 64,
            "created_at": T0,
        }
    ],
    "finetune_runs": [
        {
            "id": "r1",
            "task": "sentiment",
            "kind": "classifier",
            "status": "succeeded",
            "config": {"epochs": 3, "lora_r": 8},
            "data": {"train": {"path": "train.csv", "sha256": "ab" * 32}},
            "metrics": {"eval_f1": 0.88},
            "progress": 1.0,
            "output_dir": "runs/r1",
            "error": None,
            "started_at": T0,
            "finished_at": T0.replace(hour=4),
        }
    ],
    "model_versions": [
        {
            "id": "v1",
            "task": "sentiment",
            "name": "sentiment-2024-01",
            "base_model": "distilbert-base-uncased",
            "path": "runs/r1/adapter",
            "status": "active",
            "metrics": {"eval_f1": 0.88},
            "finetune_run_id": "r1",
            "created_at": T0,
            "activated_at": T0,
        }
    ],
    "api_keys": [
        {
            "id": "k1",
            "name": "ci",
            "key_hash": "cd" * 32,
            "prefix": "sb_abcdefg",
            "scope": "admin",
            "created_at": T0,
            "revoked_at": None,
            "last_used_at": None,
        }
    ],
    "kb_articles": [
        {
            "id": "kb-1",
            "title": "Shipping",
            "language": "en",
            "body": "Parcels arrive in 3-5 days.",
            "tags": ["delivery"],
            "embedding": b"\x00\x00\x80?" * 4,
            "created_at": T0,
            "updated_at": T0,
        }
    ],
    "predictions": [
        {
            "id": "p1",
            "task": "sentiment",
            "model_version": "sentiment-2024-01",
            "label": "negative",
            "score": 0.93,
            "language": "de",
            "text_chars": 33,
            "created_at": T0,
        }
    ],
}


def _insert_rows_as_of_0001(url: str) -> None:
    engine = db.make_engine(url)
    try:
        with engine.begin() as connection:
            metadata = sa.MetaData()
            for name in ROWS_AT_0001:  # parents before children
                table = sa.Table(name, metadata, autoload_with=connection)
                connection.execute(table.insert(), ROWS_AT_0001[name])
    finally:
        engine.dispose()


def _as_utc(value):
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # SQLite gives naive UTC back
    return value


def test_upgrade_from_0001_with_rows_keeps_them(database_url, session_factory_for):
    db.upgrade(database_url, "0001")
    _insert_rows_as_of_0001(database_url)

    db.upgrade(database_url)  # to head, through every later revision
    assert db.current_revision(database_url) == db.head_revision()

    # Every 0001 column of every row is still there, unchanged.
    engine = db.make_engine(database_url)
    try:
        with engine.connect() as connection:
            metadata = sa.MetaData()
            for name, rows in ROWS_AT_0001.items():
                table = sa.Table(name, metadata, autoload_with=connection)
                stored = {r.id: r._mapping for r in connection.execute(sa.select(table))}
                assert set(stored) == {row["id"] for row in rows}, name
                for row in rows:
                    for column, value in row.items():
                        got = _as_utc(stored[row["id"]][column])
                        assert got == value, f"{name}.{column} changed"
    finally:
        engine.dispose()

    # The old rows work with today's models and repositories, cascades included.
    with session_factory_for(database_url)() as session:
        conversation = conversations.get_conversation(session, conversation_id="c1")
        assert conversation.meta == {"plan": "pro", "tags": ["vip"]}
        assert conversation.created_at == T0
        assert [m.id for m in conversations.list_messages(session, conversation_id="c1")] == [
            "m1",
            "m2",
        ]
        assert model_versions.get_active_model_version(session, task="sentiment").id == "v1"
        assert api_keys.any_active_api_key(session) is True
        assert conversations.delete_conversation(session, conversation_id="c1") is True
        session.commit()
        assert conversations.get_message(session, message_id="m2") is None
        assert feedback.get_feedback(session, feedback_id="f1") is None


def test_downgrade_to_base_and_back(database_url):
    db.upgrade(database_url)
    db.downgrade(database_url, "base")
    assert db.current_revision(database_url) is None
    assert _tables(database_url) <= {"alembic_version"}

    db.upgrade(database_url)
    assert db.current_revision(database_url) == db.head_revision()


def test_every_revision_downgrades_and_upgrades_again(database_url):
    """The 'stairway': up one, down one, up again, for each revision in turn."""
    for revision in _revisions_base_to_head():
        db.upgrade(database_url, revision.revision)
        db.downgrade(database_url, revision.down_revision or "base")
        db.upgrade(database_url, revision.revision)
        assert db.current_revision(database_url) == revision.revision


def test_alembic_command_line_uses_the_packaged_ini_from_any_directory(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    command = [sys.executable, "-m", "alembic", "-c", str(REPO_ROOT / "storage" / "alembic.ini")]
    upgraded = subprocess.run(
        [*command, "-x", f"url={url}", "upgrade", "head"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert db.current_revision(url) == db.head_revision()


def test_upgrade_to_0003_turns_normal_keys_into_agent_keys_and_holds_old_corrections(database_url):
    """0003 (trust boundaries): old "normal" keys become agent keys; feedback with
    corrections stored before it waits for review, bare ratings are signals."""
    db.upgrade(database_url, "0002")
    _insert_rows_as_of_0001(database_url)
    engine = db.make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO api_keys (id, name, key_hash, prefix, scope, created_at) "
                "VALUES ('k2', 'old-service', 'h2', 'sb_old', 'normal', :t)"), {"t": T0})
            connection.execute(sa.text(
                "INSERT INTO feedback (id, message_id, rating, fingerprint, created_at) "
                "VALUES ('f2', 'm2', 'up', 'fp2', :t)"), {"t": T0})
        db.upgrade(database_url)
        with engine.connect() as connection:
            scopes = dict(connection.execute(sa.text("SELECT name, scope FROM api_keys")).all())
            review = dict(connection.execute(sa.text("SELECT id, review_status FROM feedback")).all())
    finally:
        engine.dispose()
    assert scopes["old-service"] == "agent" and "normal" not in scopes.values()
    assert review == {"f1": "pending", "f2": "signal"}  # f1 carries a corrected reply
