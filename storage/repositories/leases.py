"""Named leases: a lock across processes and hosts that outlives no one for long.

`acquire` takes the lease `name` for `holder` until now + ttl, if nobody holds it or the
holder's lease has expired (a process killed with -9 never releases it; its lease simply
runs out). The holder `renew`s it while it works (a heartbeat) and `release`s it at the
end. Each call is a transaction of its own; the database serialises them on the row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from storage.db import insert_ignoring_conflicts
from storage.models import Lease, utcnow

T = Lease.__table__


def acquire(engine: Engine, *, name: str, holder: str, ttl_s: float, now: datetime | None = None) -> Lease | None:
    """None when taken (also when `holder` already held it); else the lease as it is
    now held by someone else (for the message)."""
    now = now or utcnow()
    expires = now + timedelta(seconds=ttl_s)
    with engine.begin() as c:
        inserted = c.execute(insert_ignoring_conflicts(
            c.dialect.name, T, name=name, holder=holder, acquired_at=now, expires_at=expires).returning(T.c.name)).first()
        if inserted is not None:
            return None
        taken = c.execute(sa.update(T).where(
            T.c.name == name, sa.or_(T.c.expires_at < now, T.c.holder == holder))
            .values(holder=holder, acquired_at=now, expires_at=expires))
        if taken.rowcount == 1:
            return None
    return current(engine, name=name)


def renew(engine: Engine, *, name: str, holder: str, ttl_s: float, now: datetime | None = None) -> bool:
    """Extend `holder`'s lease; False when it is no longer theirs (expired and taken)."""
    expires = (now or utcnow()) + timedelta(seconds=ttl_s)
    with engine.begin() as c:
        return c.execute(sa.update(T).where(T.c.name == name, T.c.holder == holder)
                         .values(expires_at=expires)).rowcount == 1


def release(engine: Engine, *, name: str, holder: str) -> bool:
    with engine.begin() as c:
        return c.execute(sa.delete(T).where(T.c.name == name, T.c.holder == holder)).rowcount == 1


def current(engine: Engine, *, name: str) -> Lease | None:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        lease = session.get(Lease, name)
        if lease is not None:
            session.expunge(lease)
        return lease
