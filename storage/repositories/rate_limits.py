"""Token buckets in the database, so a limit holds across every worker and host.

A bucket per key holds up to `burst` tokens and refills at `rate` tokens per second from
the time it was last computed (`updated_at`, the database's clock, so hosts whose clocks
differ agree). Taking a token is one conditional UPDATE (the database serialises
concurrent ones on the row), or an INSERT for a key seen for the first time:

    UPDATE rate_limit_buckets SET tokens = avail - 1, updated_at = now
     WHERE key = :key AND avail >= 1        -- avail = min(burst, tokens + elapsed * rate)

Keys carry the limiter's namespace ("api:...", "chat:...", "chat-new:..."): each
namespace has its own rate, and `forget_full` deletes only its own idle buckets.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from storage.db import insert_ignoring_conflicts
from storage.models import RateLimitBucket

T = RateLimitBucket.__table__


@dataclass(frozen=True)
class Taken:
    allowed: bool
    tokens: float  # left after this request (allowed) or available now (refused)
    wait_s: float  # seconds until a token is back (0 when allowed)


def _now(dialect_name: str, now: float | None):
    """The clock: `now` when given (tests), else the database's, in epoch seconds; one
    value per statement (PostgreSQL statement_timestamp(); SQLite 'now' is fixed per step)."""
    if now is not None:
        return sa.literal(float(now), sa.Float)
    if dialect_name == "postgresql":
        return sa.cast(sa.func.extract("epoch", sa.func.statement_timestamp()), sa.Float)
    if dialect_name == "sqlite":
        return (sa.func.julianday("now") - 2440587.5) * 86400.0
    raise NotImplementedError(f"rate limits in the database: no clock for {dialect_name}")


def _available(now, rate: float, burst: int):
    elapsed = sa.case((now > T.c.updated_at, now - T.c.updated_at), else_=0.0)
    refilled = T.c.tokens + elapsed * sa.literal(float(rate), sa.Float)
    return sa.case((refilled > float(burst), sa.literal(float(burst), sa.Float)), else_=refilled)


def take(engine: Engine, *, key: str, rate: float, burst: int, now: float | None = None) -> Taken:
    """Take one token from `key`'s bucket (created full on first use), in a transaction
    of its own. `rate`: tokens per second (> 0); `now`: a fixed clock for tests."""
    dialect = engine.dialect.name
    clock = _now(dialect, now)
    avail = _available(clock, rate, burst)
    with engine.begin() as connection:
        for _ in range(3):  # a bucket deleted by forget_full between two statements: once more
            row = connection.execute(
                sa.update(T).where(T.c.key == key, avail >= 1.0)
                .values(tokens=avail - 1.0, updated_at=clock).returning(T.c.tokens)).first()
            if row is not None:
                return Taken(True, float(row[0]), 0.0)
            inserted = connection.execute(insert_ignoring_conflicts(
                dialect, T, key=key, tokens=float(burst) - 1.0,
                updated_at=clock).returning(T.c.key)).first()
            if inserted is not None:
                return Taken(True, float(burst) - 1.0, 0.0)
            left = connection.execute(sa.select(avail).where(T.c.key == key)).scalar()
            if left is not None:
                return Taken(False, float(left), (1.0 - float(left)) / rate)
    raise RuntimeError(f"rate limit bucket {key!r} kept disappearing")  # pragma: no cover


def forget_full(engine: Engine, *, namespace: str, rate: float, burst: int, now: float | None = None) -> int:
    """Delete the buckets of `namespace` that have refilled completely (a missing bucket
    is a full one); returns how many."""
    clock = _now(engine.dialect.name, now)
    with engine.begin() as connection:
        return connection.execute(sa.delete(T).where(
            T.c.key.startswith(namespace + ":", autoescape=True),
            T.c.updated_at < clock - float(burst) / rate)).rowcount
