"""The log of classifier predictions served (sentiment, intent). No raw text is kept:
only the label, score, language and the text's length, for monitoring and drift checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from storage.models import CLASSIFIER_TASKS, Prediction, new_id, utcnow


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    label: str
    score: float
    text_chars: int
    language: str | None = None


def log_predictions(
    session: Session,
    *,
    task: str,
    model_version: str,
    records: Iterable[PredictionRecord],
) -> int:
    """Log one served batch in a single bulk insert; returns the number of rows."""
    if task not in CLASSIFIER_TASKS:
        raise ValueError(f"task must be one of {', '.join(CLASSIFIER_TASKS)}; got {task!r}")
    now = utcnow()
    rows = [
        {
            "id": new_id(),
            "task": task,
            "model_version": model_version,
            "label": r.label,
            "score": float(r.score),
            "language": r.language,
            "text_chars": int(r.text_chars),
            "created_at": now,
        }
        for r in records
    ]
    if rows:
        session.execute(sa.insert(Prediction), rows)
        session.flush()
    return len(rows)


def list_predictions(
    session: Session,
    *,
    task: str | None = None,
    since: datetime | None = None,
    limit: int = 1000,
) -> list[Prediction]:
    """Logged predictions, oldest first."""
    query = sa.select(Prediction)
    if task is not None:
        query = query.where(Prediction.task == task)
    if since is not None:
        query = query.where(Prediction.created_at >= since)
    return list(session.scalars(query.order_by(Prediction.created_at, Prediction.id).limit(limit)))
