"""The Dashboard tab's "Learning loop" (ui/dashboard.py) on a real runtime and database:
corrections per day, retrain runs with their decision and metric deltas (newest first,
within the period), the version each route served when; the existing outputs come first
and the tab still needs a login."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import gradio as gr
import pytest

from fixtures.dialogue import make_runtime
from storage.models import RetrainRun
from storage.repositories import conversations
from storage.repositories import feedback as feedback_repo
from storage.repositories import model_versions as versions
from ui.auth import Access, add_user, remove_user
from ui.dashboard import RUN_COLUMNS, SERVED_COLUMNS, build_dashboard_tab, dashboard, delta, run_row

NOW = datetime.now(UTC).replace(microsecond=0)
METRICS = {"active": {"benchmarks": {"sst2_dev.csv": 87.84, "tweets.csv": 70.0}, "feedback": 0.0},
           "alpha=1": {"benchmarks": {"sst2_dev.csv": 86.24, "tweets.csv": 71.5}, "feedback": 23.33},
           "alpha=0.5": {"benchmarks": {"sst2_dev.csv": 87.6, "tweets.csv": 70.25}, "feedback": 12.5},
           "candidate": {"benchmarks": {"sst2_dev.csv": 87.6, "tweets.csv": 70.25}, "feedback": 12.5},
           "alpha": 0.5}


def at(days_ago: int) -> datetime:
    return (NOW - timedelta(days=days_ago)).replace(hour=12, minute=0, second=0)


@pytest.fixture
def runtime(tmp_path):
    runtime = make_runtime(tmp_path)
    yield runtime
    runtime.close()


def seed(runtime) -> dict[str, str]:
    with runtime.sessions.begin() as s:
        c = conversations.create_conversation(s)
        turn = conversations.add_message(s, conversation_id=c.id, role="customer", text="my parcel is late")
        for i, (days_ago, status, fields) in enumerate([
                (1, "confirmed", {"corrected_sentiment": "negative"}),
                (1, "confirmed", {"corrected_sentiment": "neutral", "corrected_intent": "shipping"}),
                (2, "pending", {"corrected_intent": "refund"}),
                (20, "confirmed", {"corrected_reply": "It left the warehouse today."})]):
            row = feedback_repo.add_feedback(s, message_id=turn.id, rating="down", comment=str(i),
                                             review_status=status, **fields)
            row.created_at = at(days_ago)
        runs = {}
        for name, days_ago, status, reason, details in [
                ("old", 20, "skipped", "3 new rows since the last run; 20 needed", {"new_rows": 3}),
                ("chosen", 3, "promoted", "feedback slice 0.0 → 12.5 (alpha 0.5 of 1, 0.5)",
                 {"new_rows": 40, "rows": 90, "train_rows": 63, "heldout_rows": 27, "metrics": METRICS}),
                ("newest", 1, "failed", "RuntimeError: out of memory", {"new_rows": 25, "rows": 115})]:
            run = RetrainRun(task="sentiment", route="zh" if name == "newest" else "default", status=status,
                             reason=reason, details=details, started_at=at(days_ago))
            s.add(run)
            s.flush()
            runs[name] = run.id
        for name, days_ago in (("sent-base", 30), ("sent-retrain-1", 3)):
            v = versions.create_model_version(s, task="sentiment", name=name, path=f"runs/{name}")
            versions.activate_model_version(s, version_id=v.id)
            v.activated_at = at(days_ago)
    return runs


def test_delta_text():
    assert delta(87.84, 86.24) == "87.84 → 86.24 (-1.60)"
    assert delta(0.0, 23.333) == "0.00 → 23.33 (+23.33)"
    assert delta(None, 1.0) == "" and delta(1.0, True) == ""


def test_run_row_shows_rows_alpha_and_deltas():
    row = run_row({"started_at": at(3), "task": "sentiment", "route": "zh", "status": "promoted", "reason": "ok",
                   "details": {"new_rows": 40, "rows": 90, "train_rows": 63, "heldout_rows": 27,
                               "metrics": METRICS}})
    assert dict(zip(RUN_COLUMNS, row)) == {
        "started": at(3).strftime("%Y-%m-%d %H:%M"), "task/route": "sentiment/zh", "status": "promoted",
        "reason": "ok", "rows new / all (train + held out)": "40 / 90 (63 + 27)", "alpha": "0.5 of 1, 0.5",
        "held-out feedback: active → candidate": "0.00 → 12.50 (+12.50)",
        "benchmarks: active → candidate": "sst2_dev.csv 87.84 → 87.60 (-0.24); tweets.csv 70.00 → 70.25 (+0.25)"}
    skipped = run_row({"started_at": at(1), "task": "intent", "route": "default", "status": "skipped",
                       "reason": None, "details": {"new_rows": 3}})
    assert skipped[1:] == ["intent", "skipped", "", "3 / –", "", "", ""]


def test_dashboard_returns_the_loop_after_the_existing_outputs(runtime):
    runs = seed(runtime)
    out = dashboard(runtime, "Last 7 days")
    assert len(out) == 12 and "escalation rate" in out[0] and isinstance(out[7], list)
    summary, corrections, run_rows, served = out[8:]
    assert "**3** confirmed corrections (sentiment 2 · intent 1 · reply 0)" in summary
    assert "**1** customers' corrections pending" in summary and "**2** retrain runs" in summary
    day = lambda n: at(n).date().isoformat()  # noqa: E731
    assert sorted(map(tuple, corrections[["day", "series", "count"]].values.tolist())) == sorted(
        [(day(1), "sentiment", 2), (day(1), "intent", 1), (day(2), "pending", 1)])
    assert [r[1] for r in run_rows] == ["sentiment/zh", "sentiment"]  # newest first; the 20-day-old run is out
    assert run_rows[1][2:] == ["promoted", "feedback slice 0.0 → 12.5 (alpha 0.5 of 1, 0.5)", "40 / 90 (63 + 27)",
                               "0.5 of 1, 0.5", "0.00 → 12.50 (+12.50)",
                               "sst2_dev.csv 87.84 → 87.60 (-0.24); tweets.csv 70.00 → 70.25 (+0.25)"]
    assert [dict(zip(SERVED_COLUMNS, r)) for r in served] == [
        {"task/route": "sentiment", "version": "sent-retrain-1", "status": "active",
         "activated": at(3).strftime("%Y-%m-%d %H:%M"), "served until": "now"},
        {"task/route": "sentiment", "version": "sent-base", "status": "retired",
         "activated": at(30).strftime("%Y-%m-%d %H:%M"), "served until": at(3).strftime("%Y-%m-%d %H:%M")}]
    everything = dashboard(runtime, "All time")
    assert "**4** confirmed corrections" in everything[8] and "skipped 1" in everything[8]
    assert [r[2] for r in everything[10]] == ["failed", "promoted", "skipped"] and len(runs) == 3


def test_the_tab_still_needs_a_login(runtime):
    add_user(runtime.sessions, "ana", "agent", "agent-password-1")
    with gr.Blocks():
        show, period, outputs = build_dashboard_tab(runtime, Access(runtime.sessions))
    assert len(outputs) == 12 and period.value == "Last 30 days"
    with pytest.raises(gr.Error):
        show("Last 7 days", SimpleNamespace(username=None))
    with pytest.raises(gr.Error):
        show("Last 7 days", SimpleNamespace(username="mallory"))
    assert len(show("Last 7 days", SimpleNamespace(username="ana"))) == 12
    remove_user(runtime.sessions, "ana")
    with pytest.raises(gr.Error):
        show("Last 7 days", SimpleNamespace(username="ana"))
