"""Alembic environment for supportbot's schema.

Run programmatically by `storage.db.upgrade()` or by developers with
`alembic -c storage/alembic.ini ...`. The database URL is the first of:
`config.attributes["url"]` (storage.db), `-x url=...` on the command line, the config's
`sqlalchemy.url`, then `core.config.get_settings().resolved_database_url`.
"""

from __future__ import annotations

from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

from storage.db import make_engine
from storage.models import Base, UTCDateTime

config = context.config

# Only the alembic CLI has an ini file; programmatic runs keep the app's logging as is.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _database_url() -> str | sa.URL:
    url = (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
    )
    if url:
        return url
    from core.config import get_settings

    return get_settings().resolved_database_url


def _render_item(type_: str, obj, autogen_context):
    """Render our column types as plain SQLAlchemy ones, so that revisions never import
    storage.models (which keeps changing while revisions must not)."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, sa.JSON):
        return "sa.JSON()"
    return False


def _configure_options(url: sa.URL) -> dict:
    return {
        "target_metadata": target_metadata,
        # SQLite can't ALTER most things; batch mode recreates the table instead.
        "render_as_batch": url.get_backend_name() == "sqlite",
        "render_item": _render_item,
        "compare_type": True,
    }


def run_migrations_offline() -> None:
    """`alembic upgrade --sql`: print the SQL instead of running it."""
    url = sa.make_url(_database_url())
    context.configure(
        url=url, literal_binds=True, dialect_opts={"paramstyle": "named"}, **_configure_options(url)
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = sa.make_url(_database_url())
    # Foreign keys off while migrating SQLite: batch mode drops and recreates tables,
    # which would otherwise cascade-delete child rows. Checked again at the end.
    engine = make_engine(url, foreign_keys=False, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, **_configure_options(url))
            with context.begin_transaction():
                context.run_migrations()
            if connection.dialect.name == "sqlite":
                problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if problems:
                    raise RuntimeError(
                        f"the migration left rows with dangling foreign keys: {problems[:5]}"
                    )
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
