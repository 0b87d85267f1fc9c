"""Rate limits across workers (issue 19): two limiters (two worker processes) on one
database share each caller's bucket; the in-process fast path only ever refuses when the
shared bucket would too; a database that cannot be reached leaves the per-process limit."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bot.ratelimit import RateLimitedError, RateLimiter
from storage import db


@pytest.fixture
def engines(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    db.upgrade(url)
    made = [db.make_engine(url), db.make_engine(url)]
    yield made
    for e in made:
        e.dispose()


def _outcomes(limiters, caller, n):
    out = []
    for i in range(n):
        try:
            limiters[i % len(limiters)].hit(caller)
            out.append("ok")
        except RateLimitedError:
            out.append("429")
    return out


def test_two_workers_share_one_limit(engines):
    workers = [RateLimiter(per_minute=0.001, burst=4, engine=e) for e in engines]
    assert _outcomes(workers, "key:a", 8) == ["ok"] * 4 + ["429"] * 4
    assert _outcomes(workers, "key:b", 2) == ["ok", "ok"]  # another caller has its own bucket


def test_without_the_database_each_worker_has_its_own_limit():
    workers = [RateLimiter(per_minute=0.001, burst=4) for _ in range(2)]
    assert _outcomes(workers, "key:a", 8) == ["ok"] * 8  # what issue 19 found: N workers = N x the limit


def test_the_fast_path_refuses_only_what_the_database_would(engines):
    one, two = (RateLimiter(per_minute=0.001, burst=3, engine=e) for e in engines)
    assert _outcomes([one], "key:a", 2) == ["ok", "ok"]
    assert _outcomes([two], "key:a", 2) == ["ok", "429"]
    # `one` still believes one token is left, asks the database, and is refused there
    assert _outcomes([one], "key:a", 1) == ["429"]
    with engines[0].begin() as c:  # the bucket is dropped (forget_full): full again
        c.execute(sa.text("DELETE FROM rate_limit_buckets"))
    assert _outcomes([one], "key:a", 1) == ["429"]  # its own copy says empty: refused without asking


def test_namespaces_do_not_share_buckets(engines):
    api = RateLimiter(per_minute=0.001, burst=1, engine=engines[0], namespace="api")
    chat = RateLimiter(per_minute=0.001, burst=1, engine=engines[1], namespace="chat")
    assert _outcomes([api], "1.2.3.4", 1) == ["ok"] and _outcomes([chat], "1.2.3.4", 1) == ["ok"]


def test_an_unreachable_database_falls_back_to_the_process_limit(tmp_path):
    broken = db.make_engine(f"sqlite:///{tmp_path / 'no-schema.db'}")  # no rate_limit_buckets table
    limiter = RateLimiter(per_minute=0.001, burst=2, engine=broken)
    assert _outcomes([limiter], "key:a", 3) == ["ok", "ok", "429"]
    broken.dispose()
