"""Storage fixtures: a real database per test, its schema built by Alembic.

`database_url` runs each test on a SQLite file in tmp_path and, when
SUPPORTBOT_TEST_POSTGRES_URL names a PostgreSQL server (any database on it; see
scripts/pg_throwaway.sh), again on a fresh database created on that server for the test
and dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from storage import db

POSTGRES_ENV = "SUPPORTBOT_TEST_POSTGRES_URL"


def _postgres_server_url() -> sa.URL | None:
    value = os.environ.get(POSTGRES_ENV)  # test-only switch, not an app setting
    return sa.make_url(value) if value else None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """An empty database; the URL as a string."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'supportbot.db'}"
        return
    server = _postgres_server_url()
    if server is None:
        pytest.skip(f"set {POSTGRES_ENV} (e.g. from scripts/pg_throwaway.sh) to run on PostgreSQL")
    name = f"supportbot_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield server.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """An engine on a database upgraded to the newest revision."""
    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: sa.Engine):
    return db.make_session_factory(engine)


@pytest.fixture
def session(session_factory) -> Iterator[Session]:
    with session_factory() as session:
        yield session


@pytest.fixture
def session_factory_for():
    """Make a session factory for any URL (for tests that build the schema themselves);
    the engines are disposed afterwards."""
    engines: list[sa.Engine] = []

    def make(url: str):
        engine = db.make_engine(url)
        engines.append(engine)
        return db.make_session_factory(engine)

    yield make
    for engine in engines:
        engine.dispose()
