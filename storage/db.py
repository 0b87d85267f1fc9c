"""Engines, sessions and schema upgrades.

    engine = make_engine(get_settings().resolved_database_url,
                         busy_timeout_ms=get_settings().sqlite_busy_timeout_ms)
    upgrade(url)                      # what `supportbot db upgrade` runs; never create_all
    SessionFactory = make_session_factory(engine)
    with SessionFactory() as session, session.begin():
        ...                           # repositories flush, the caller commits

SQLite connections get WAL journaling (readers don't block the writer; with
synchronous=NORMAL), a busy timeout (writers wait for each other instead of failing at
once) and enforced foreign keys (so ON DELETE CASCADE works). PostgreSQL connections are
pinged before use and give up connecting after a few seconds.

Schema upgrades hold a lock, so any number of workers (and hosts) can start at once: a
PostgreSQL advisory lock (pg_advisory_lock, released with its connection, so also when a
process dies), a file lock next to a SQLite file (filelock). The first takes the schema
to head; the others wait, then find it there.

A SQLite database file holds customer conversations: it is created readable by its owner
only (0600, before SQLite creates it with the umask's mode; SQLite gives its -wal and
-shm files the database file's mode), an existing one loses its group and other bits,
and a data directory created for it is 0700.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
PG_CONNECT_TIMEOUT_S = 5
# pg_advisory_lock key of schema upgrades: a fixed 64-bit number ("supportbot migrate").
MIGRATION_LOCK_KEY = 0x5375_7070_6D69_6772
MIGRATION_LOCK_TIMEOUT_S = 600  # a SQLite waiter gives up after this long (PostgreSQL: its statement timeout)


def _sqlite_file(url: sa.URL) -> Path | None:
    """The database file of a SQLite URL; None for in-memory databases."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if url.query.get("mode") == "memory":
        return None
    return Path(database)


def _private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 (and its directory 0700) if they are missing; take
    group and other permissions away from an existing file and its companion files."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)  # the umask may have taken more
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        os.close(fd)  # an empty file is a valid, empty SQLite database
        return
    for companion in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        try:
            mode = stat.S_IMODE(companion.stat().st_mode)
            if mode & 0o077:
                os.chmod(companion, mode & 0o700)
        except FileNotFoundError:
            continue
        except PermissionError:  # someone else's file: SQLite decides whether it can be used
            log.warning("could not make %s private (chmod 600): not its owner", companion)


def make_engine(
    url: str | sa.URL, *, busy_timeout_ms: int = 5000, foreign_keys: bool = True, **kwargs: Any
) -> Engine:
    """An engine for `url` with supportbot's connection settings.

    `foreign_keys=False` is for schema migrations only: SQLite's batch mode copies and
    drops tables, and with foreign keys on, dropping a parent would cascade-delete its
    children. Extra keyword arguments go to `sqlalchemy.create_engine`.
    """
    url = make_url(url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = _sqlite_file(url)
        if path is not None:
            _private_sqlite_file(path)
        connect_args = {
            "timeout": busy_timeout_ms / 1000,
            # Connections move between threads through the pool (FastAPI's threadpool);
            # each is still used by one thread at a time.
            "check_same_thread": False,
            **kwargs.pop("connect_args", {}),
        }
        engine = sa.create_engine(url, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine, busy_timeout_ms=busy_timeout_ms, foreign_keys=foreign_keys)
        return engine
    if backend == "postgresql":
        connect_args = {"connect_timeout": PG_CONNECT_TIMEOUT_S, **kwargs.pop("connect_args", {})}
        kwargs.setdefault("pool_pre_ping", True)
        return sa.create_engine(url, connect_args=connect_args, **kwargs)
    return sa.create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int, foreign_keys: bool) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _connection_record) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # Persistent in the file; a no-op (reports 'memory') for in-memory databases.
            cursor.execute("PRAGMA journal_mode=WAL")
            # The usual companion of WAL: no fsync per commit, only at checkpoints. A
            # power cut may lose the last commits but never corrupts the file.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        finally:
            cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to `engine`. Objects stay readable after commit (no expiry), so an
    API handler can commit and then serialise what it created."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def ping(engine: Engine) -> bool:
    """True when the database answers `SELECT 1`; never raises."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return True
    except Exception as exc:  # any driver error means: not reachable
        log.debug("database ping failed: %s", exc)
        return False


# -- Alembic -------------------------------------------------------------------------
# Alembic is imported on first use: make_engine/ping users don't pay for it, and its
# INFO chatter on import ("setup plugin ...") and on connect ("Context impl ...") is
# kept out of the app's log. Real upgrades are still logged ("Running upgrade ...").


@contextmanager
def _quiet(logger_name: str = "alembic") -> Iterator[None]:
    """Raise a logger to WARNING for a moment."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def alembic_config(url: str | sa.URL) -> Config:
    """An Alembic config for the packaged migrations, independent of the CWD.

    The URL travels in `config.attributes` (not the ini's `sqlalchemy.url`, where a '%'
    in a password would break interpolation); `migrations/env.py` reads it there.
    """
    with _quiet():
        from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["url"] = make_url(url)
    return config


def upgrade(url: str | sa.URL, revision: str = "head") -> None:
    """Bring the schema at `url` up to `revision` (default: the newest).

    Quick and silent when the database is at head already: the app and the CLI call it
    on every start.
    """
    if revision == "head" and current_revision(url) == head_revision():
        return
    from alembic import command

    with migration_lock(url):
        if revision == "head" and current_revision(url) == head_revision():
            return  # another process did it while this one waited
        command.upgrade(alembic_config(url), revision)


@contextmanager
def migration_lock(url: str | sa.URL) -> Iterator[None]:
    """One schema change at a time per database, across processes and hosts: PostgreSQL's
    session advisory lock on a connection of its own, a file lock beside a SQLite file
    (`<db>.migrate.lock`); nothing for in-memory SQLite or other backends."""
    url = make_url(url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        engine = make_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                connection.commit()
                try:
                    yield
                finally:
                    connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                    connection.commit()
        finally:
            engine.dispose()
        return
    path = _sqlite_file(url) if backend == "sqlite" else None
    if path is None:
        yield
        return
    from filelock import FileLock

    _private_sqlite_file(path)  # its directory 0700, as make_engine would
    with FileLock(str(path) + ".migrate.lock", timeout=MIGRATION_LOCK_TIMEOUT_S, mode=0o600):
        yield


def downgrade(url: str | sa.URL, revision: str) -> None:
    """Take the schema at `url` down to `revision` ("base": no tables)."""
    from alembic import command

    with migration_lock(url):
        command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    """The newest revision shipped with this package."""
    config = alembic_config("sqlite://")
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(url: str | sa.URL) -> str | None:
    """The revision the database at `url` is at; None for an empty (or missing) one."""
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        path = _sqlite_file(url)
        if path is not None and not path.exists():
            return None  # don't create the file just to look inside
    with _quiet():
        from alembic.runtime.migration import MigrationContext

    engine = make_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection, _quiet():
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def insert_ignoring_conflicts(dialect_name: str, table, **values: Any):
    """`INSERT ... ON CONFLICT DO NOTHING` for SQLite and PostgreSQL. Whether the row went
    in: add `.returning(<key column>)` and look for a row (psycopg's rowcount does not tell)."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect_name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise NotImplementedError(f"insert_ignoring_conflicts: no support for {dialect_name}")
    return insert(table).values(**values).on_conflict_do_nothing()
