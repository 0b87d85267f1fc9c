"""Fine-tuning runs: what was trained on what data, how far it got, how it ended."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from storage.models import check_choice, FINETUNE_KINDS, FINETUNE_STATUSES, TASKS, FinetuneRun, utcnow

FINISHED_STATUSES = tuple(s for s in FINETUNE_STATUSES if s != "running")


def start_run(
    session: Session,
    *,
    task: str,
    kind: str,
    config: dict[str, Any] | None = None,
    data: list[dict[str, Any]] | dict[str, Any] | None = None,
    output_dir: str | None = None,
) -> FinetuneRun:
    """Record a run that starts now. `config` is the resolved recipe config; `data`
    names the training files with their sha256, e.g. [{"path", "sha256", "rows"}, ...]
    (a dict such as {"train": {...}, "eval": {...}} is accepted too)."""
    check_choice(task, TASKS, "task")
    check_choice(kind, FINETUNE_KINDS, "kind")
    run = FinetuneRun(
        task=task,
        kind=kind,
        status="running",
        config=dict(config or {}),
        data=dict(data) if isinstance(data, dict) else list(data or []),
        metrics={},
        progress=0.0,
        output_dir=output_dir,
    )
    session.add(run)
    session.flush()
    return run


def get_run(session: Session, *, run_id: str) -> FinetuneRun | None:
    return session.get(FinetuneRun, run_id)


def list_runs(
    session: Session, *, task: str | None = None, status: str | None = None, limit: int = 100
) -> list[FinetuneRun]:
    """Runs, newest first."""
    query = sa.select(FinetuneRun)
    if task is not None:
        query = query.where(FinetuneRun.task == task)
    if status is not None:
        query = query.where(FinetuneRun.status == status)
    query = query.order_by(FinetuneRun.started_at.desc(), FinetuneRun.id.desc()).limit(limit)
    return list(session.scalars(query))


def update_progress(
    session: Session, *, run_id: str, progress: float, metrics: dict[str, Any] | None = None
) -> FinetuneRun | None:
    """Set a running run's progress (0..1) and merge in `metrics` (e.g. the latest eval
    loss). None if there is no such run. Raises ValueError for progress outside 0..1 or
    a run that has already finished."""
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be between 0 and 1; got {progress}")
    run = session.get(FinetuneRun, run_id)
    if run is None:
        return None
    if run.status != "running":
        raise ValueError(f"run {run_id} has already finished ({run.status})")
    run.progress = progress
    if metrics:
        run.metrics = {**run.metrics, **metrics}  # a new dict, so the change is seen
    session.flush()
    return run


def finish_run(
    session: Session,
    *,
    run_id: str,
    status: str,
    metrics: dict[str, Any] | None = None,
    error: str | None = None,
    output_dir: str | None = None,
) -> FinetuneRun | None:
    """End a run as 'succeeded', 'failed' or 'killed', merging in the final metrics.
    A succeeded run's progress becomes 1. None if there is no such run."""
    check_choice(status, FINISHED_STATUSES, "status")
    run = session.get(FinetuneRun, run_id)
    if run is None:
        return None
    run.status = status
    run.finished_at = utcnow()
    if metrics:
        run.metrics = {**run.metrics, **metrics}
    if error is not None:
        run.error = error
    if output_dir is not None:
        run.output_dir = output_dir
    if status == "succeeded":
        run.progress = 1.0
    session.flush()
    return run
