"""The Dashboard tab: activity, sentiment, escalations, feedback, intents and unanswered
questions over a chosen period, the model versions with their metrics, and the learning
loop: corrections per day, retrain runs with their decision and metric deltas, and which
version served each route when."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import gradio as gr
import pandas as pd

from bot import prompting
from bot.runtime import Runtime
from bot.versions import key_metric, versions_public
from storage.models import DEFAULT_ROUTE
from storage.repositories import stats
from ui.auth import Access
from ui.common import SENTIMENT_COLOURS, require, when

PERIODS = {"Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90, "All time": None}
VERSION_COLUMNS = ["task", "route", "name", "status", "key metric", "metrics", "activated", "path"]
RUN_COLUMNS = ["started", "task/route", "status", "reason", "rows new / all (train + held out)", "alpha",
               "held-out feedback: active → candidate", "benchmarks: active → candidate"]
SERVED_COLUMNS = ["task/route", "version", "status", "activated", "served until"]
CORRECTION_COLOURS = {"sentiment": "#2980b9", "intent": "#8e44ad", "reply": "#16a085", "pending": "#bdc3c7"}
SERVED_CAPTION = ("Each version's latest activation only (a rollback moves it to the rollback's time): a version "
                  "that served twice shows once, at its last start. *served until* is the next activation on "
                  "the route.")


def _texts(key: str) -> list[str]:
    return [texts[key] for texts in prompting.TEXTS.values()]


def since_for(period: str) -> datetime | None:
    days = PERIODS.get(period, 30)
    if days is None:
        return None
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days - 1)


def every_day(days: list[dict], since: datetime | None) -> dict[str, dict]:
    """Each day of the period (zeros on quiet days), so a line has a point per day."""
    by_day = {d["day"]: d for d in days}
    first = since.date() if since is not None else (
        datetime.fromisoformat(days[0]["day"]).date() if days else datetime.now(UTC).date())
    last = datetime.now(UTC).date()
    out, day = {}, first
    while day <= last:
        out[day.isoformat()] = by_day.get(day.isoformat(), {})
        day += timedelta(days=1)
    return out


def versions_table(runtime: Runtime) -> list[list]:
    with runtime.sessions() as session:
        data = versions_public(session, runtime.settings)
    rows = []
    for task, info in data.items():
        for route, r in info["routes"].items():
            if r["active"] is None and r["configured_default"]:
                rows.append([task, route, r["configured_default"], "serving (configured default)", "", "", "", ""])
        for v in info["versions"]:
            metric = key_metric(v["metrics"])
            numbers = {k: round(x, 4) for k, x in v["metrics"].items() if isinstance(x, (int, float))}
            rows.append([task, v["route"], v["name"], v["status"], f"{metric[0]} {metric[1]:.4f}" if metric else "",
                         ", ".join(f"{k}={x}" for k, x in list(numbers.items())[:6]), when(v["activated_at"]),
                         v["path"] or ""])
    return rows


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def delta(before, after) -> str:
    """"a → b (+d)" for two scores; "" when either is missing."""
    if not (_number(before) and _number(after)):
        return ""
    return f"{before:.2f} → {after:.2f} ({after - before:+.2f})"


def task_route(task: str, route: str) -> str:
    return task if route == DEFAULT_ROUTE else f"{task}/{route}"


def run_row(run: dict) -> list:
    """One retrain run as a table row (details and metrics as finetune/retrain.py writes them)."""
    d = run["details"]
    metrics = d.get("metrics") or {}
    active, candidate = metrics.get("active") or {}, metrics.get("candidate") or {}
    rows = f"{d.get('new_rows', '')} / {d.get('rows', '–')}"
    if "train_rows" in d:
        rows += f" ({d['train_rows']} + {d.get('heldout_rows', 0)})"
    tried = [key.split("=", 1)[1] for key in metrics if key.startswith("alpha=")]
    alpha = metrics.get("alpha")
    alpha = (f"{alpha:g}" + (f" of {', '.join(tried)}" if len(tried) > 1 else "")) if _number(alpha) else ""
    after = candidate.get("benchmarks") or {}
    benchmarks = "; ".join(f"{name} {delta(score, after.get(name))}"
                           for name, score in (active.get("benchmarks") or {}).items())
    return [when(run["started_at"]), task_route(run["task"], run["route"]), run["status"], run["reason"] or "",
            rows, alpha, delta(active.get("feedback"), candidate.get("feedback")), benchmarks]


def learning_loop(runtime: Runtime, since: datetime | None) -> tuple:
    """(summary, corrections per day, retrain runs rows, served versions rows)."""
    with runtime.sessions() as session:
        corrections = stats.corrections_per_day(session, since=since)
        runs = stats.retrain_runs(session, since=since)
        served = stats.activations(session, since=since)
    per_series = {series: sum(c["count"] for c in corrections if c["series"] == series)
                  for series in CORRECTION_COLOURS}
    decided = Counter(r["status"] for r in runs)
    summary = (f"**{sum(n for k, n in per_series.items() if k != 'pending')}** confirmed corrections ("
               + " · ".join(f"{k} {n}" for k, n in per_series.items() if k != "pending")
               + f") · **{per_series['pending']}** customers' corrections pending · **{len(runs)}** retrain runs"
               + (" (" + ", ".join(f"{k} {n}" for k, n in decided.most_common()) + ")" if runs else ""))
    frame = pd.DataFrame(corrections, columns=["day", "series", "count"])
    served_rows = [[task_route(v["task"], v["route"]), v["name"], v["status"], when(v["activated_at"]),
                    when(v["until"]) if v["until"] is not None else ("now" if v["status"] == "active" else "")]
                   for v in served]
    return summary, frame, [run_row(r) for r in runs], served_rows


def dashboard(runtime: Runtime, period: str) -> tuple:
    since = since_for(period)
    with runtime.sessions() as session:
        days = stats.per_day(session, since=since)
        sentiment = stats.sentiment_per_day(session, since=since)
        escalation = stats.escalations(session, since=since, handoff_texts=_texts("handoff"))
        feedback = stats.feedback_per_day(session, since=since)
        totals = stats.feedback_totals(session, since=since)
        intents = stats.top_intents(session, since=since)
        unanswered = stats.unanswered_questions(session, since=since, no_answer_texts=_texts("no_answer"),
                                                handoff_texts=_texts("handoff"))
    activity = pd.DataFrame([{"day": day, "series": series, "count": d.get(series, 0)}
                             for day, d in every_day(days, since).items() for series in ("conversations", "messages")],
                            columns=["day", "series", "count"])
    mix = pd.DataFrame(sentiment, columns=["day", "label", "count"])
    reasons = pd.DataFrame([{"reason": k, "conversations": v} for k, v in escalation["reasons"].items()],
                           columns=["reason", "conversations"])
    ratings = pd.DataFrame(feedback, columns=["day", "rating", "count"])
    top = pd.DataFrame(intents, columns=["intent", "count"])
    up, down = totals.get("up", 0), totals.get("down", 0)
    summary = (f"**{escalation['conversations']}** conversations · **{sum(d['messages'] for d in days)}** messages · "
               f"escalation rate **{escalation['rate']:.0%}** ({escalation['escalated']}) · "
               f"👍 **{up}** / 👎 **{down}**" + (f" ({up / (up + down):.0%} helpful)" if up + down else ""))
    questions = [[q["question"], q["count"], when(q["last_asked"])] for q in unanswered]
    return (summary, activity, mix, reasons, ratings, top, questions, versions_table(runtime),
            *learning_loop(runtime, since))


def build_dashboard_tab(runtime: Runtime, access: Access) -> None:
    def show(period: str, request: gr.Request):
        require(access, request)
        return dashboard(runtime, period)

    with gr.Row():
        period = gr.Dropdown(list(PERIODS), value="Last 30 days", label="Period", scale=1, elem_id="dashboard-period")
        refresh = gr.Button("Refresh", scale=0, min_width=90, elem_id="dashboard-refresh")
    summary = gr.Markdown(elem_id="dashboard-summary")
    with gr.Row():
        activity = gr.LinePlot(x="day", y="count", color="series", title="Conversations and messages per day",
                               elem_id="plot-activity", height=260, y_lim=[0, None], x_label_angle=-30)
        mix = gr.BarPlot(x="day", y="count", color="label", title="Sentiment of customer turns per day",
                         color_map=SENTIMENT_COLOURS, elem_id="plot-sentiment", height=260, y_lim=[0, None])
    with gr.Row():
        reasons = gr.BarPlot(x="reason", y="conversations", title="Escalations by reason", elem_id="plot-escalations",
                             height=260, y_lim=[0, None])
        ratings = gr.BarPlot(x="day", y="count", color="rating", title="Feedback per day (👍 up / 👎 down)",
                             elem_id="plot-feedback", color_map={"up": "#27ae60", "down": "#c0392b"}, height=260,
                             y_lim=[0, None])
    with gr.Row():
        intents = gr.BarPlot(x="intent", y="count", title="Top intents", elem_id="plot-intents", sort="-y",
                             x_label_angle=-30, height=260, y_lim=[0, None])
        unanswered = gr.Dataframe(headers=["question", "times", "last asked"], datatype=["str", "number", "str"],
                                  interactive=False, wrap=True, label="Top unanswered questions",
                                  elem_id="dashboard-unanswered")
    versions = gr.Dataframe(headers=VERSION_COLUMNS, datatype=["str"] * len(VERSION_COLUMNS), interactive=False,
                            wrap=True, label="Model versions", elem_id="dashboard-versions")
    gr.Markdown("### Learning loop")
    loop_summary = gr.Markdown(elem_id="dashboard-loop-summary")
    corrections = gr.BarPlot(x="day", y="count", color="series", color_map=CORRECTION_COLOURS, height=260,
                             title="Corrections per day (confirmed, by kind; customers' pending)",
                             elem_id="plot-corrections", y_lim=[0, None], x_label_angle=-30)
    runs = gr.Dataframe(headers=RUN_COLUMNS, datatype=["str"] * len(RUN_COLUMNS), interactive=False, wrap=True,
                        label="Retrain runs (newest first, at most 50)", elem_id="dashboard-retrain-runs")
    served = gr.Dataframe(headers=SERVED_COLUMNS, datatype=["str"] * len(SERVED_COLUMNS), interactive=False,
                          wrap=True, label="Active version per route over time", elem_id="dashboard-served")
    gr.Markdown(SERVED_CAPTION, elem_id="dashboard-served-caption")
    outputs = [summary, activity, mix, reasons, ratings, intents, unanswered, versions,
               loop_summary, corrections, runs, served]
    refresh.click(show, inputs=period, outputs=outputs, api_name="dashboard")
    period.change(show, inputs=period, outputs=outputs, api_visibility="private")
    return show, period, outputs  # ui/app.py draws it when the tab is selected
