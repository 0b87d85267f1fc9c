"""Leases (the retrain lock across hosts): one holder at a time, an expired lease can be
taken over, renewals keep it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage import db
from storage.repositories import leases

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_one_holder_at_a_time(engine, database_url):
    other = db.make_engine(database_url)  # another host
    try:
        assert leases.acquire(engine, name="retrain", holder="a", ttl_s=60, now=T0) is None
        held = leases.acquire(other, name="retrain", holder="b", ttl_s=60, now=T0 + timedelta(seconds=30))
        assert held is not None and held.holder == "a"
        assert leases.release(engine, name="retrain", holder="a")
        assert leases.acquire(other, name="retrain", holder="b", ttl_s=60, now=T0 + timedelta(seconds=31)) is None
    finally:
        other.dispose()


def test_an_expired_lease_is_taken_over_and_its_old_holder_notices(engine):
    assert leases.acquire(engine, name="retrain", holder="dead", ttl_s=60, now=T0) is None
    assert leases.acquire(engine, name="retrain", holder="b", ttl_s=60, now=T0 + timedelta(seconds=61)) is None
    assert not leases.renew(engine, name="retrain", holder="dead", ttl_s=60)
    assert not leases.release(engine, name="retrain", holder="dead")
    assert leases.current(engine, name="retrain").holder == "b"


def test_renewal_keeps_the_lease(engine):
    assert leases.acquire(engine, name="retrain", holder="a", ttl_s=60, now=T0) is None
    assert leases.renew(engine, name="retrain", holder="a", ttl_s=60, now=T0 + timedelta(seconds=50))
    held = leases.acquire(engine, name="retrain", holder="b", ttl_s=60, now=T0 + timedelta(seconds=100))
    assert held is not None and held.holder == "a"
    assert held.expires_at == T0 + timedelta(seconds=110)
