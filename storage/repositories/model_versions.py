"""Model versions per task: candidates from fine-tuning, the active one, retired ones.

A version serves one *route* of its task: "default", or a language the task routes to
its own model (sentiment: "zh"). At most one version per task and route is 'active' (a
partial unique index backs this up). `activate_model_version` promotes a version and
retires the previously active one of its route in the same transaction;
`rollback_model_version` re-activates the version that was active before the current
one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.errors import InputError
from storage.models import check_choice, DEFAULT_ROUTE, MODEL_VERSION_STATUSES, TASKS, ModelVersion, utcnow


class DuplicateModelVersion(InputError):
    """A version with this name exists already for the task."""


def create_model_version(
    session: Session,
    *,
    task: str,
    name: str,
    path: str | None = None,
    base_model: str | None = None,
    metrics: dict[str, Any] | None = None,
    finetune_run_id: str | None = None,
    status: str = "candidate",
    route: str = DEFAULT_ROUTE,
) -> ModelVersion:
    """Register a version (a 'candidate' unless told otherwise; use
    activate_model_version to make one active). Raises DuplicateModelVersion if the
    task already has a version called `name`."""
    check_choice(task, TASKS, "task")
    if status not in MODEL_VERSION_STATUSES or status == "active":
        raise ValueError(
            "status must be 'candidate', 'retired' or 'rejected' (activate with "
            f"activate_model_version); got {status!r}"
        )
    if get_model_version_by_name(session, task=task, name=name) is not None:
        raise DuplicateModelVersion(
            f"a {task} model version named {name!r} exists already; choose another name"
        )
    version = ModelVersion(
        task=task,
        name=name,
        route=route,
        path=path,
        base_model=base_model,
        metrics=dict(metrics or {}),
        finetune_run_id=finetune_run_id,
        status=status,
    )
    session.add(version)
    session.flush()
    return version


def get_model_version(session: Session, *, version_id: str) -> ModelVersion | None:
    return session.get(ModelVersion, version_id)


def get_model_version_by_name(session: Session, *, task: str, name: str) -> ModelVersion | None:
    return session.scalar(
        sa.select(ModelVersion).where(ModelVersion.task == task, ModelVersion.name == name)
    )


def list_model_versions(
    session: Session, *, task: str | None = None, status: str | None = None
) -> list[ModelVersion]:
    """Versions, by task, newest first."""
    query = sa.select(ModelVersion)
    if task is not None:
        query = query.where(ModelVersion.task == task)
    if status is not None:
        query = query.where(ModelVersion.status == status)
    query = query.order_by(ModelVersion.task, ModelVersion.created_at.desc(), ModelVersion.id)
    return list(session.scalars(query))


def get_active_model_version(session: Session, *, task: str, route: str = DEFAULT_ROUTE) -> ModelVersion | None:
    return session.scalar(
        sa.select(ModelVersion).where(
            ModelVersion.task == task, ModelVersion.route == route, ModelVersion.status == "active"
        )
    )


def active_model_versions(session: Session) -> dict[tuple[str, str], ModelVersion]:
    """The active version of every (task, route) that has one."""
    rows = session.scalars(sa.select(ModelVersion).where(ModelVersion.status == "active"))
    return {(v.task, v.route): v for v in rows}


def activate_model_version(session: Session, *, version_id: str) -> ModelVersion | None:
    """Make a version the active one of its task and route; the previously active version
    there becomes 'retired' in the same transaction. Activating the active version
    changes nothing. None if there is no such version."""
    version = session.get(ModelVersion, version_id)
    if version is None:
        return None
    if version.status == "active":
        return version
    previous = get_active_model_version(session, task=version.task, route=version.route)
    if previous is not None:
        previous.status = "retired"
        session.flush()  # before the new one turns active: one active per task
    version.status = "active"
    version.activated_at = utcnow()
    session.flush()
    return version


def rollback_model_version(session: Session, *, task: str, route: str = DEFAULT_ROUTE) -> ModelVersion | None:
    """Re-activate the version that was active before the current one (the retired
    version activated most recently). None, changing nothing, if there is none."""
    check_choice(task, TASKS, "task")
    previous = session.scalar(
        sa.select(ModelVersion)
        .where(
            ModelVersion.task == task,
            ModelVersion.route == route,
            ModelVersion.status == "retired",
            ModelVersion.activated_at.is_not(None),
        )
        .order_by(ModelVersion.activated_at.desc(), ModelVersion.id.desc())
        .limit(1)
    )
    if previous is None:
        return None
    return activate_model_version(session, version_id=previous.id)


# ---- paths relative to the models directory ------------------------------------------
# A version's directory is stored relative to the models directory (settings.models_dir),
# so every host that mounts that directory where its own settings say resolves it. Other
# references (packaged names, hub ids, directories outside it) are stored as given; rows
# written with absolute paths before keep working (joining an absolute path keeps it).


def path_to_store(path: str | None, models_dir: Path) -> str | None:
    """`path` relative to `models_dir` when it is a directory inside it, else as given."""
    if not path:
        return path
    local = Path(path).expanduser()
    if not local.is_absolute():
        if not local.exists():
            return path  # a packaged name or hub id, not a directory here
        local = local.resolve()
    try:
        return local.resolve().relative_to(models_dir.resolve()).as_posix() or "."
    except ValueError:
        return path


def path_to_load(stored: str | None, models_dir: Path) -> str | None:
    """The local path of a stored reference: `models_dir / stored` when that exists (and
    always for an absolute path), else the reference itself (packaged name, hub id)."""
    if not stored:
        return stored
    candidate = models_dir / stored
    if Path(stored).is_absolute() or candidate.exists():
        return str(candidate)
    return stored
