"""Read-only aggregates for the dashboard, over conversations created (or messages and
feedback written) since a given time. Days are UTC calendar days, as 'YYYY-MM-DD'.

Grouping runs in SQL (`date(...)` exists on SQLite and PostgreSQL); the few lookups that
need a message's neighbour run over at most `limit` rows.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from storage.models import Conversation, Feedback, Message, ModelVersion, RetrainRun

# The bot's fixed replies (bot/prompting.py, stored with model_version "supportbot-rules").
RULES_MODEL = "supportbot-rules"


def _day(column):
    return sa.func.date(column)


def _str_day(value) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def per_day(session: Session, *, since: datetime | None) -> list[dict]:
    """[{day, conversations, messages, customer_messages}] for days with any activity."""
    out: dict[str, dict] = {}
    q = sa.select(_day(Conversation.created_at), sa.func.count()).group_by(_day(Conversation.created_at))
    if since is not None:
        q = q.where(Conversation.created_at >= since)
    for day, n in session.execute(q):
        out.setdefault(_str_day(day), {"conversations": 0, "messages": 0, "customer_messages": 0})["conversations"] = n
    q = (sa.select(_day(Message.created_at), Message.role, sa.func.count())
         .group_by(_day(Message.created_at), Message.role))
    if since is not None:
        q = q.where(Message.created_at >= since)
    for day, role, n in session.execute(q):
        row = out.setdefault(_str_day(day), {"conversations": 0, "messages": 0, "customer_messages": 0})
        row["messages"] += n
        if role == "customer":
            row["customer_messages"] += n
    return [{"day": day, **row} for day, row in sorted(out.items())]


def sentiment_per_day(session: Session, *, since: datetime | None) -> list[dict]:
    """[{day, label, count}] over customer turns."""
    q = (sa.select(_day(Message.created_at), Message.sentiment_label, sa.func.count())
         .where(Message.role == "customer", Message.sentiment_label.is_not(None))
         .group_by(_day(Message.created_at), Message.sentiment_label))
    if since is not None:
        q = q.where(Message.created_at >= since)
    return sorted(({"day": _str_day(d), "label": label, "count": n} for d, label, n in session.execute(q)),
                  key=lambda r: (r["day"], r["label"]))


def escalations(session: Session, *, since: datetime | None, handoff_texts: list[str]) -> dict:
    """How many conversations (created since) went to a person, and why.

    A conversation counts as escalated when the bot handed it over (one of
    `handoff_texts`) or an agent wrote in it. The reason is the conversation's current
    one; conversations released back to the bot since are counted as "released"."""
    q = sa.select(Conversation.id, Conversation.status, Conversation.escalation_reason)
    if since is not None:
        q = q.where(Conversation.created_at >= since)
    conversations = session.execute(q).all()
    handed = set(session.scalars(
        sa.select(Message.conversation_id).where(
            sa.or_(Message.role == "agent",
                   sa.and_(Message.role == "bot", Message.model_version == RULES_MODEL,
                           Message.text.in_(handoff_texts)))).distinct()))
    reasons: Counter = Counter()
    for cid, status, reason in conversations:
        if cid in handed or status == "escalated":
            reasons[(reason or "released") if status == "escalated" else "released"] += 1
    total = len(conversations)
    escalated = sum(reasons.values())
    return {"conversations": total, "escalated": escalated, "rate": escalated / total if total else 0.0,
            "reasons": dict(reasons.most_common())}


def feedback_per_day(session: Session, *, since: datetime | None) -> list[dict]:
    """[{day, rating, count}]."""
    q = sa.select(_day(Feedback.created_at), Feedback.rating, sa.func.count()).group_by(
        _day(Feedback.created_at), Feedback.rating)
    if since is not None:
        q = q.where(Feedback.created_at >= since)
    return sorted(({"day": _str_day(d), "rating": r, "count": n} for d, r, n in session.execute(q)),
                  key=lambda r: (r["day"], r["rating"]))


def top_intents(session: Session, *, since: datetime | None, limit: int = 10) -> list[dict]:
    q = (sa.select(Message.intent_label, sa.func.count().label("n"))
         .where(Message.role == "customer", Message.intent_label.is_not(None))
         .group_by(Message.intent_label).order_by(sa.desc("n"), Message.intent_label).limit(limit))
    if since is not None:
        q = q.where(Message.created_at >= since)
    return [{"intent": label, "count": n} for label, n in session.execute(q)]


def unanswered_questions(session: Session, *, since: datetime | None, no_answer_texts: list[str],
                         handoff_texts: list[str], limit: int = 10, scan: int = 2000) -> list[dict]:
    """The customer turns the bot could not answer: those it replied to with its
    no-answer text, or that it handed to a person because it had no answer (the
    conversation's reason is `no_answer`). Grouped by the (case-folded) question."""
    q = (sa.select(Message.conversation_id, Message.created_at, Message.text, Conversation.escalation_reason)
         .join(Conversation, Conversation.id == Message.conversation_id)
         .where(Message.role == "bot", Message.model_version == RULES_MODEL,
                sa.or_(Message.text.in_(no_answer_texts),
                       sa.and_(Message.text.in_(handoff_texts), Conversation.escalation_reason == "no_answer")))
         .order_by(Message.created_at.desc()).limit(scan))
    if since is not None:
        q = q.where(Message.created_at >= since)
    counts: Counter = Counter()
    shown: dict[str, str] = {}
    last: dict[str, datetime] = {}
    for conversation_id, created_at, _text, _reason in session.execute(q):
        question = session.scalar(
            sa.select(Message.text).where(Message.conversation_id == conversation_id, Message.role == "customer",
                                          Message.created_at < created_at)
            .order_by(Message.created_at.desc()).limit(1))
        if not question:
            continue
        key = " ".join(question.casefold().split())
        counts[key] += 1
        shown.setdefault(key, question)
        last[key] = max(last.get(key, created_at), created_at)
    return [{"question": shown[k], "count": n, "last_asked": last[k]} for k, n in counts.most_common(limit)]


def feedback_totals(session: Session, *, since: datetime | None) -> dict[str, int]:
    q = sa.select(Feedback.rating, sa.func.count()).group_by(Feedback.rating)
    if since is not None:
        q = q.where(Feedback.created_at >= since)
    return {rating: n for rating, n in session.execute(q)}


# ---- the learning loop -------------------------------------------------------------------
# A correction's kind and the column that holds it.
CORRECTION_KINDS = {"sentiment": Feedback.corrected_sentiment, "intent": Feedback.corrected_intent,
                    "reply": Feedback.corrected_reply}


def corrections_per_day(session: Session, *, since: datetime | None) -> list[dict]:
    """[{day, series, count}]: confirmed corrections per kind ("sentiment", "intent",
    "reply"; a row correcting two things counts for both), on the day they were confirmed
    (an agent's own: the day written), and customers' corrections still waiting for an
    agent as one "pending" series (rows, on the day written). Rejected ones are left out."""
    when_ = sa.func.coalesce(Feedback.reviewed_at, Feedback.created_at)
    q = (sa.select(_day(when_), Feedback.review_status, sa.func.count(),
                   *(sa.func.count(column) for column in CORRECTION_KINDS.values()))
         .where(Feedback.review_status.in_(("confirmed", "pending")),
                sa.or_(*(column.is_not(None) for column in CORRECTION_KINDS.values())))
         .group_by(_day(when_), Feedback.review_status))
    if since is not None:
        q = q.where(when_ >= since)
    out: Counter = Counter()
    for day, status, rows, *per_kind in session.execute(q):
        if status == "pending":
            out[(_str_day(day), "pending")] += rows
            continue
        for kind, n in zip(CORRECTION_KINDS, per_kind):
            out[(_str_day(day), kind)] += n
    return [{"day": day, "series": series, "count": n} for (day, series), n in sorted(out.items()) if n]


def retrain_runs(session: Session, *, since: datetime | None, limit: int = 50) -> list[dict]:
    """The newest `limit` retrain runs started since, newest first: [{id, task, route,
    status, reason, details, started_at, finished_at}] (details as finetune/retrain.py
    writes them)."""
    q = sa.select(RetrainRun).order_by(RetrainRun.started_at.desc(), RetrainRun.id.desc()).limit(limit)
    if since is not None:
        q = q.where(RetrainRun.started_at >= since)
    return [{"id": r.id, "task": r.task, "route": r.route, "status": r.status, "reason": r.reason,
             "details": dict(r.details or {}), "started_at": r.started_at, "finished_at": r.finished_at}
            for r in session.scalars(q)]


def activations(session: Session, *, since: datetime | None) -> list[dict]:
    """Which version served each task/route when: [{task, route, name, status,
    activated_at, until}], per task/route newest first. `until` is the next activation on
    the route (None: still active, or retired with nothing activated after it). Only each
    version's latest activation is stored (a rollback moves it), so a version served twice
    shows once. Kept: the versions that served some time after `since`."""
    q = (sa.select(ModelVersion).where(ModelVersion.activated_at.is_not(None))
         .order_by(ModelVersion.task, ModelVersion.route, ModelVersion.activated_at.desc(), ModelVersion.id.desc()))
    out: list[dict] = []
    later: dict[tuple[str, str], datetime] = {}
    for v in session.scalars(q):
        until = later.get((v.task, v.route))
        later[(v.task, v.route)] = v.activated_at
        if since is not None and until is not None and until < since:
            continue
        out.append({"task": v.task, "route": v.route, "name": v.name, "status": v.status,
                    "activated_at": v.activated_at, "until": until})
    return out

