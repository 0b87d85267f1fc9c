"""Token buckets in the database (issue 19): one bucket per key whichever process or
engine takes from it, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from storage import db
from storage.models import RateLimitBucket
from storage.repositories import rate_limits


def test_a_burst_then_refusal_then_refill(engine):
    for i in range(3):
        taken = rate_limits.take(engine, key="api:a", rate=1.0, burst=3, now=100.0)
        assert taken.allowed and taken.tokens == 2 - i
    refused = rate_limits.take(engine, key="api:a", rate=1.0, burst=3, now=100.0)
    assert not refused.allowed and refused.wait_s == 1.0
    assert not rate_limits.take(engine, key="api:a", rate=1.0, burst=3, now=100.5).allowed
    assert rate_limits.take(engine, key="api:a", rate=1.0, burst=3, now=101.0).allowed
    # a refill never goes beyond the burst, and a clock behind the stored time takes nothing back
    assert rate_limits.take(engine, key="api:a", rate=1.0, burst=3, now=1000.0).tokens == 2
    assert rate_limits.take(engine, key="api:a", rate=1.0, burst=3, now=900.0).tokens == 1


def test_keys_are_separate(engine):
    assert rate_limits.take(engine, key="api:a", rate=1.0, burst=1, now=5.0).allowed
    assert not rate_limits.take(engine, key="api:a", rate=1.0, burst=1, now=5.0).allowed
    assert rate_limits.take(engine, key="api:b", rate=1.0, burst=1, now=5.0).allowed


def test_two_engines_share_one_bucket(engine, database_url):
    """What a second worker (its own engine and pool) sees: the same bucket."""
    other = db.make_engine(database_url)
    try:
        assert rate_limits.take(engine, key="api:k", rate=0.001, burst=2, now=1.0).allowed
        assert rate_limits.take(other, key="api:k", rate=0.001, burst=2, now=1.0).allowed
        assert not rate_limits.take(engine, key="api:k", rate=0.001, burst=2, now=1.0).allowed
        assert not rate_limits.take(other, key="api:k", rate=0.001, burst=2, now=1.0).allowed
    finally:
        other.dispose()


def test_concurrent_takers_never_get_more_than_the_burst(engine, database_url):
    engines = [db.make_engine(database_url) for _ in range(4)]
    allowed = []
    lock = threading.Lock()

    def worker(e):
        for _ in range(15):
            ok = rate_limits.take(e, key="chat:1.2.3.4", rate=1e-6, burst=25).allowed
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=worker, args=(e,)) for e in engines]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for e in engines:
            e.dispose()
    assert len(allowed) == 60 and sum(allowed) == 25


def test_the_database_clock_is_used_without_a_given_now(engine):
    assert rate_limits.take(engine, key="api:clock", rate=1.0, burst=2).allowed
    with engine.connect() as c:
        stored = c.execute(sa.select(RateLimitBucket.updated_at)).scalar()
    assert stored > 1.7e9  # seconds since the epoch, from the database


def test_forget_full_deletes_only_full_buckets_of_its_namespace(engine):
    rate_limits.take(engine, key="api:old", rate=1.0, burst=10, now=0.0)
    rate_limits.take(engine, key="api:new", rate=1.0, burst=10, now=95.0)
    rate_limits.take(engine, key="chat:old", rate=1.0, burst=10, now=0.0)
    assert rate_limits.forget_full(engine, namespace="api", rate=1.0, burst=10, now=100.0) == 1
    with engine.connect() as c:
        keys = sorted(c.execute(sa.select(RateLimitBucket.key)).scalars())
    assert keys == ["api:new", "chat:old"]
