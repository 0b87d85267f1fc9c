"""The Dashboard tab: activity, sentiment, escalations, feedback, intents and unanswered
questions over a chosen period, and the model versions with their metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import gradio as gr
import pandas as pd

from bot import prompting
from bot.runtime import Runtime
from bot.versions import key_metric, versions_public
from storage.repositories import stats
from ui.auth import Access
from ui.common import SENTIMENT_COLOURS, require, when

PERIODS = {"Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90, "All time": None}
VERSION_COLUMNS = ["task", "route", "name", "status", "key metric", "metrics", "activated", "path"]


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
    return summary, activity, mix, reasons, ratings, top, questions, versions_table(runtime)


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
    outputs = [summary, activity, mix, reasons, ratings, intents, unanswered, versions]
    refresh.click(show, inputs=period, outputs=outputs, api_name="dashboard")
    period.change(show, inputs=period, outputs=outputs, api_visibility="private")
    return show, period, outputs  # ui/app.py draws it when the tab is selected
