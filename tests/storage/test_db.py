from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from storage import db
from storage.models import Conversation
from storage.repositories import conversations


def test_sqlite_engine_sets_wal_busy_timeout_and_foreign_keys(tmp_path):
    path = tmp_path / "nested" / "dir" / "supportbot.db"  # the parent dirs don't exist yet
    engine = db.make_engine(f"sqlite:///{path}", busy_timeout_ms=1234)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert path.exists()
    finally:
        engine.dispose()
    # WAL is a property of the file: a plain connection sees it too.
    with sqlite3.connect(path) as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_engine_can_leave_foreign_keys_off_for_migrations(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'x.db'}", foreign_keys=False)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
    finally:
        engine.dispose()


def test_sqlite_writer_waits_for_busy_timeout_instead_of_failing(tmp_path):
    path = tmp_path / "busy.db"
    db.upgrade(f"sqlite:///{path}")
    engine = db.make_engine(f"sqlite:///{path}", busy_timeout_ms=5000)
    Session = db.make_session_factory(engine)
    locked = threading.Event()

    def hold_the_write_lock():
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(0.4)
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    try:
        assert locked.wait(5)
        started = time.monotonic()
        with Session() as session, session.begin():
            conversations.create_conversation(session, channel="web")
        waited = time.monotonic() - started
    finally:
        holder.join()
        engine.dispose()
    # It waited for the other writer rather than raising "database is locked".
    assert waited >= 0.2


def test_engine_answers_ping_and_has_connection_settings(database_url):
    engine = db.make_engine(database_url)
    try:
        assert db.ping(engine) is True
        if engine.dialect.name == "postgresql":
            assert engine.pool._pre_ping is True
            raw = engine.raw_connection()
            try:
                parameters = raw.driver_connection.info.get_parameters()
            finally:
                raw.close()
            assert parameters["connect_timeout"] == str(db.PG_CONNECT_TIMEOUT_S)
    finally:
        engine.dispose()


def test_ping_is_false_when_the_database_is_unreachable(tmp_path):
    # Port 1 on loopback: connection refused at once.
    engine = db.make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    assert db.ping(engine) is False
    # A SQLite path whose parent is a file cannot be opened.
    blocker = tmp_path / "file"
    blocker.write_text("")
    sqlite_engine = sa.create_engine(f"sqlite:///{blocker / 'x.db'}")
    assert db.ping(sqlite_engine) is False


def test_session_objects_stay_readable_after_commit(session_factory):
    with session_factory() as session:
        conversation = conversations.create_conversation(session, channel="web")
        session.commit()
        # expire_on_commit=False: no refresh needed (an API handler serialises after commit)
        assert "channel" in conversation.__dict__
        assert conversation.channel == "web"


def test_datetimes_come_back_timezone_aware_utc(session_factory):
    with session_factory() as session:
        conversation = conversations.create_conversation(session)
        # A non-UTC aware time is stored as the same instant in UTC.
        plus_two = timezone(timedelta(hours=2))
        conversation.created_at = datetime(2024, 5, 1, 14, 30, tzinfo=plus_two)
        session.commit()
        conversation_id = conversation.id
    with session_factory() as session:
        loaded = session.get(Conversation, conversation_id)
        assert loaded.created_at.tzinfo is not None
        assert loaded.created_at.utcoffset() == timedelta(0)
        assert loaded.created_at == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def test_current_revision_of_a_missing_sqlite_file_is_none_and_creates_nothing(tmp_path):
    path = tmp_path / "missing.db"
    assert db.current_revision(f"sqlite:///{path}") is None
    assert not path.exists()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_is_supported(url):
    engine = db.make_engine(url)
    try:
        assert db.ping(engine)
    finally:
        engine.dispose()


# ---- issue 14: the database file is private -------------------------------------------


@pytest.fixture
def umask_022():
    import os

    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    import stat

    return stat.S_IMODE(path.stat().st_mode)


def test_a_fresh_database_file_and_its_new_home_are_private(tmp_path, umask_022):
    home = tmp_path / "home"  # does not exist yet: make_engine creates it
    path = home / "supportbot.db"
    db.upgrade(f"sqlite:///{path}")  # what the app runs first: a real schema, written in WAL mode
    engine = db.make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x)")
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
            assert _mode(path.with_name("supportbot.db-wal")) == 0o600  # SQLite copies the mode
        assert _mode(path) == 0o600
        assert _mode(home) == 0o700
    finally:
        engine.dispose()


def test_an_existing_world_readable_database_is_made_private_on_open(tmp_path, umask_022):
    import os

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as plain:  # created by an older version: 0644
        plain.execute("CREATE TABLE t (x)")
    wal = path.with_name("old.db-wal")
    wal.write_bytes(b"")
    os.chmod(wal, 0o644)
    assert _mode(path) == 0o644
    engine = db.make_engine(f"sqlite:///{path}")
    try:
        assert _mode(path) == 0o600 and _mode(wal) == 0o600
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    finally:
        engine.dispose()


def test_an_existing_data_directory_keeps_its_mode(tmp_path, umask_022):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    engine = db.make_engine(f"sqlite:///{home / 'supportbot.db'}")
    engine.dispose()
    assert _mode(home) == 0o755
    assert _mode(home / "supportbot.db") == 0o600


# ---- several workers starting at once (issue 19) --------------------------------------------

_UPGRADE = """
import sys, time
from storage import db
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))  # all processes begin at the same moment
db.upgrade(sys.argv[1])
print(db.current_revision(sys.argv[1]))
"""


def _upgraders(url: str, n: int, start: float):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    return [subprocess.Popen([sys.executable, "-c", _UPGRADE, url, str(start)], cwd=repo, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(n)]


def test_three_processes_upgrading_one_fresh_database_at_once_all_succeed(database_url):
    procs = _upgraders(database_url, 3, time.time() + 4)  # time to import alembic and sqlalchemy first
    results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    head = db.head_revision()
    for code, out, err in results:
        assert code == 0, err[-2000:]
        assert out.strip().splitlines()[-1] == head
    assert db.current_revision(database_url) == head
    engine = db.make_engine(database_url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        assert {"conversations", "messages", "alembic_version"} <= tables
        with engine.connect() as connection:  # one version row, not one per process
            assert connection.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        engine.dispose()


def test_an_upgrade_waits_for_the_migration_lock(database_url):
    with db.migration_lock(database_url):
        (proc,) = _upgraders(database_url, 1, time.time())
        time.sleep(3)
        assert proc.poll() is None, "the upgrade ran while another process held the lock"
        assert db.current_revision(database_url) is None
    assert proc.wait(timeout=180) == 0, proc.communicate()[1][-2000:]
    assert db.current_revision(database_url) == db.head_revision()
