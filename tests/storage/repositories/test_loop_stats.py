"""The dashboard's learning-loop queries (storage/repositories/stats.py) on a real
database: corrections per day by kind (confirmed on the day confirmed, customers' pending
ones apart, rejected and plain ratings left out), retrain runs newest first, and which
version served each route when, each within the period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage.models import RetrainRun
from storage.repositories import conversations, stats
from storage.repositories import feedback as feedback_repo
from storage.repositories import model_versions as versions

NOW = datetime.now(UTC).replace(microsecond=0)


def day(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).date().isoformat()


def at(days_ago: int, hour: int = 12) -> datetime:
    return (NOW - timedelta(days=days_ago)).replace(hour=hour, minute=0, second=0)


def correction(session, message_id, *, written: int, reviewed: int | None = None, status="confirmed", **fields):
    row = feedback_repo.add_feedback(session, message_id=message_id, rating="down", review_status=status,
                                     comment=f"{status} {written} {sorted(fields.items())}", **fields)
    row.created_at = at(written)
    row.reviewed_at = at(reviewed) if reviewed is not None else None
    return row


def seed_feedback(session) -> None:
    c = conversations.create_conversation(session)
    turn = conversations.add_message(session, conversation_id=c.id, role="customer", text="where is my parcel")
    reply = conversations.add_message(session, conversation_id=c.id, role="bot", text="It ships today.")
    correction(session, turn.id, written=2, corrected_sentiment="negative", corrected_intent="shipping")
    correction(session, reply.id, written=1, corrected_reply="It shipped yesterday; tracking is in your e-mail.")
    correction(session, turn.id, written=1, status="pending", corrected_sentiment="neutral")
    # A customer's correction written three days ago, confirmed by an agent yesterday.
    correction(session, turn.id, written=3, reviewed=1, corrected_sentiment="positive")
    correction(session, turn.id, written=1, reviewed=1, status="rejected", corrected_intent="refund")
    correction(session, turn.id, written=40, corrected_intent="order_status")
    feedback_repo.add_feedback(session, message_id=reply.id, rating="up", comment="thanks", review_status="signal")
    session.commit()


def test_corrections_per_day_by_kind_and_pending(session):
    seed_feedback(session)
    got = {(r["day"], r["series"]): r["count"] for r in stats.corrections_per_day(session, since=at(10, 0))}
    assert got == {(day(2), "sentiment"): 1, (day(2), "intent"): 1, (day(1), "reply"): 1,
                   (day(1), "sentiment"): 1, (day(1), "pending"): 1}


def test_corrections_per_day_respects_the_period(session):
    seed_feedback(session)
    everything = stats.corrections_per_day(session, since=None)
    assert {"day": day(40), "series": "intent", "count": 1} in everything
    assert sum(r["count"] for r in everything) == 6
    recent = stats.corrections_per_day(session, since=at(1, 0))
    assert {(r["day"], r["series"]) for r in recent} == {(day(1), "reply"), (day(1), "sentiment"),
                                                        (day(1), "pending")}
    assert [r["day"] for r in everything] == sorted(r["day"] for r in everything)


def add_run(session, started_days_ago: int, status: str, **details) -> str:
    run = RetrainRun(task="sentiment", route="default", status=status, reason=f"{status} run",
                     details=details, started_at=at(started_days_ago))
    session.add(run)
    session.flush()
    return run.id


def test_retrain_runs_newest_first_within_the_period_and_bounded(session):
    old = add_run(session, 20, "skipped", new_rows=3)
    middle = add_run(session, 5, "rejected", new_rows=30, rows=60, metrics={"alpha": 1.0})
    newest = add_run(session, 1, "promoted", new_rows=25, rows=85)
    session.commit()
    assert [r["id"] for r in stats.retrain_runs(session, since=None)] == [newest, middle, old]
    runs = stats.retrain_runs(session, since=at(7, 0))
    assert [r["id"] for r in runs] == [newest, middle]
    assert runs[1]["details"] == {"new_rows": 30, "rows": 60, "metrics": {"alpha": 1.0}}
    assert (runs[1]["status"], runs[1]["reason"], runs[1]["task"]) == ("rejected", "rejected run", "sentiment")
    assert [r["id"] for r in stats.retrain_runs(session, since=None, limit=2)] == [newest, middle]


def activate_at(session, name: str, days_ago: int, route: str = "default"):
    version = versions.create_model_version(session, task="sentiment", name=name, path=f"runs/{name}", route=route)
    versions.activate_model_version(session, version_id=version.id)
    version.activated_at = at(days_ago)
    session.flush()
    return version


def test_activations_per_route_with_until_and_period(session):
    activate_at(session, "sent-base", 30)
    activate_at(session, "sent-r1", 5)
    activate_at(session, "sent-r2", 1)
    activate_at(session, "sent-zh", 12, route="zh")
    versions.create_model_version(session, task="sentiment", name="sent-never", path="runs/x")  # never served
    session.commit()
    rows = [(r["route"], r["name"], r["status"], r["activated_at"], r["until"])
            for r in stats.activations(session, since=None)]
    assert rows == [("default", "sent-r2", "active", at(1), None),
                    ("default", "sent-r1", "retired", at(5), at(1)),
                    ("default", "sent-base", "retired", at(30), at(5)),
                    ("zh", "sent-zh", "active", at(12), None)]
    # Three days: r1 served until yesterday, so it is kept; the base stopped 5 days ago.
    assert [r["name"] for r in stats.activations(session, since=at(3, 0))] == ["sent-r2", "sent-r1", "sent-zh"]
