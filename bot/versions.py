"""The served model versions: which model each task (and route) serves, and changing it.

A task's *route* is "default", or a language the task sends to its own model (sentiment:
"zh"). Until a version is activated, a route serves its configured default (settings:
`sentiment_model`, `sentiment_model_zh`, `intent_model`, `chat_model`). The first
activation on a route first registers that default as a version (its *baseline*), so
`rollback` can always return to what was served before.

Activation refuses a version that could not be served (`check_loadable`): a missing
directory, an adapter of another task, a missing or corrupted weights file. The CLI
(`supportbot models ...`) and the API (`/v1/model-versions`) both call this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.adapter_artifact import META_FILE, check_meta, meta_path
from core.config import Settings
from core.errors import InputError, NotFoundError
from core.model_refs import HUB_ID, PACKAGED, SHIPPED, SHIPPED_DIR
from storage.models import DEFAULT_ROUTE, TASKS, ModelVersion
from storage.repositories import model_versions as repo

ADAPTER_WEIGHTS = "adapter_model.safetensors"
# The metric `supportbot models list` shows for a version, the first one it has.
KEY_METRICS = ("macro_f1", "accuracy", "perplexity", "eval_loss")


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}: use one of {', '.join(TASKS)}")


def configured_ref(settings: Settings, task: str, route: str = DEFAULT_ROUTE) -> str | None:
    """The model a task/route serves when no version is active (None: off or no such route)."""
    _check_task(task)
    if task == "sentiment":
        return {DEFAULT_ROUTE: settings.sentiment_model, "zh": settings.sentiment_model_zh}.get(route)
    if route != DEFAULT_ROUTE:
        return None
    return settings.intent_model if task == "intent" else settings.chat_model


def configured_routes(settings: Settings, task: str) -> list[str]:
    """The routes a task has by configuration: "default", and sentiment's "zh" when set."""
    return [DEFAULT_ROUTE, "zh"] if task == "sentiment" and settings.sentiment_model_zh else [DEFAULT_ROUTE]


# ---- can it be served? -------------------------------------------------------------------
def _check_safetensors(file: Path, what: str) -> None:
    from safetensors import safe_open

    if not file.is_file():
        raise InputError(f"{what}: {file.name} is missing; the directory is incomplete (re-run the fine-tune)")
    try:
        with safe_open(str(file), framework="numpy") as f:
            keys = list(f.keys())
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError: both mean unusable
        raise InputError(f"{what}: {file.name} is not a readable safetensors file ({exc}); "
                         "it is truncated or corrupted (re-run the fine-tune)") from exc
    if not keys:
        raise InputError(f"{what}: {file.name} holds no tensors; re-run the fine-tune")


def _check_adapter_dir(task: str, path: Path, what: str) -> None:
    check_meta(path, task, what)
    if not (path / "adapter_config.json").is_file():
        raise InputError(f"{what}: adapter_config.json is missing; the directory is incomplete")
    _check_safetensors(path / ADAPTER_WEIGHTS, what)


def check_loadable(task: str, path: str | None) -> None:
    """Raise InputError (one line) unless a version at `path` can be served for `task`.

    Checks files only (cheap, nothing is loaded into memory): an adapter directory needs a
    supportbot.json of this task, adapter_config.json and a readable
    adapter_model.safetensors; a plain model directory needs config.json and readable
    *.safetensors. Packaged/shipped names and hub ids (org/name) are accepted as they are.
    """
    _check_task(task)
    if path is None or not str(path).strip():
        raise InputError("this version has no path to load it from; register it again with its directory")
    ref = str(path).strip()
    if ref in SHIPPED:
        _check_adapter_dir(task, SHIPPED_DIR / ref, f"shipped model {ref!r}")
        return
    if ref in PACKAGED:
        return
    local = Path(ref).expanduser()
    if local.is_dir():
        if meta_path(local).exists():
            _check_adapter_dir(task, local, str(local))
            return
        if not (local / "config.json").is_file():
            raise InputError(f"{local}: no config.json nor {META_FILE}; not a model directory")
        for weights in sorted(local.glob("*.safetensors")):
            _check_safetensors(weights, str(local))
        return
    if local.exists():
        raise InputError(f"{local} is a file: a version's path must be its model directory")
    if HUB_ID.match(ref) and not ref.startswith((".", "/", "~")):
        return  # a hub id: loaded through the hub cache when served
    raise InputError(f"{ref}: no such directory (was it moved or deleted?)")


# ---- where a version lives ---------------------------------------------------------------
def local_path(settings: Settings, stored: str | None) -> str | None:
    """The path (or reference) to load a stored version from on this host: relative paths
    are under settings.models_path; absolute ones (older rows) and references as they are."""
    return repo.path_to_load(stored, settings.models_path)


def path_to_store(settings: Settings, path: str | None) -> str | None:
    """A version directory inside settings.models_path, relative to it; else as given."""
    return repo.path_to_store(path, settings.models_path)


# ---- activation ------------------------------------------------------------------------
def ensure_baseline(session: Session, settings: Settings, task: str, route: str = DEFAULT_ROUTE) -> ModelVersion | None:
    """Register the configured default of a task/route as a version when no version there
    has ever been active (candidates may exist), so a rollback can return to it: named and
    pointing at the reference, 'retired', activated when registered. Returns the new
    baseline; None when the route has been served by a version before or has no default."""
    _check_task(task)
    ref = configured_ref(settings, task, route)
    if ref is None:
        return None
    served_before = session.scalar(sa.select(ModelVersion.id).where(
        ModelVersion.task == task, ModelVersion.route == route, ModelVersion.activated_at.is_not(None)).limit(1))
    if served_before is not None:
        return None
    # Version names are unique per task: the same reference may serve two routes.
    name = ref if repo.get_model_version_by_name(session, task=task, name=ref) is None else f"{ref}@{route}"
    baseline = repo.create_model_version(session, task=task, name=name, path=ref, route=route, status="retired")
    baseline.activated_at = baseline.created_at
    session.flush()
    return baseline


def find_version(session: Session, version_id_or_name: str, task: str | None = None) -> ModelVersion:
    """A version by id, else by name (within `task` when given). NotFoundError if none;
    InputError if the name exists in several tasks and no task is given."""
    if task is not None:
        _check_task(task)
    version = repo.get_model_version(session, version_id=version_id_or_name)
    if version is not None:
        if task is not None and version.task != task:
            raise InputError(f"version {version_id_or_name!r} belongs to the {version.task} task, not {task}")
        return version
    query = sa.select(ModelVersion).where(ModelVersion.name == version_id_or_name)
    if task is not None:
        query = query.where(ModelVersion.task == task)
    found = list(session.scalars(query.order_by(ModelVersion.task)))
    if not found:
        where = f" for task {task}" if task else ""
        raise NotFoundError(f"no model version {version_id_or_name!r}{where}: see 'supportbot models list'")
    if len(found) > 1:
        tasks = ", ".join(v.task for v in found)
        raise InputError(f"{version_id_or_name!r} names a version of several tasks ({tasks}): give the task "
                         "(--task) or the version's id")
    return found[0]


def activate(session: Session, settings: Settings, version_id_or_name: str, task: str | None = None) -> ModelVersion:
    """Make a version the one its task/route serves; the previous one is retired. Nothing
    is committed: the caller commits (and must not commit after an error)."""
    version = find_version(session, version_id_or_name, task)
    check_loadable(version.task, local_path(settings, version.path))
    ensure_baseline(session, settings, version.task, version.route)
    activated = repo.activate_model_version(session, version_id=version.id)
    assert activated is not None  # found above, in this transaction
    return activated


def rollback(session: Session, settings: Settings, task: str, route: str = DEFAULT_ROUTE) -> ModelVersion:
    """Re-activate the version that a task/route served before the current one. Nothing
    is committed: the caller commits (and must not commit after an error)."""
    _check_task(task)
    version = repo.rollback_model_version(session, task=task, route=route)
    if version is None:
        raise InputError(f"nothing to roll back to: {task}/{route} has no earlier active version")
    try:
        check_loadable(version.task, local_path(settings, version.path))
    except InputError as exc:
        raise InputError(f"cannot roll back {task}/{route} to {version.name!r}: {exc}") from exc
    return version


# ---- what is served ----------------------------------------------------------------------
def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def version_public(v: ModelVersion) -> dict[str, Any]:
    return {"id": v.id, "task": v.task, "route": v.route, "name": v.name, "status": v.status, "path": v.path,
            "base_model": v.base_model, "metrics": dict(v.metrics or {}), "created_at": _iso(v.created_at),
            "activated_at": _iso(v.activated_at)}


def key_metric(metrics: dict[str, Any] | None) -> tuple[str, float] | None:
    """The first of KEY_METRICS a version's metrics have, for one-line listings."""
    for name in KEY_METRICS:
        value = (metrics or {}).get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return name, float(value)
    return None


def versions_public(session: Session, settings: Settings) -> dict[str, Any]:
    """Per task: each route's active version name (None: the configured default serves)
    and configured default, and all versions, newest first."""
    active = repo.active_model_versions(session)
    out: dict[str, Any] = {}
    for task in TASKS:
        versions = repo.list_model_versions(session, task=task)
        routes = configured_routes(settings, task)
        routes += sorted({v.route for v in versions} - set(routes))
        out[task] = {
            "routes": {route: {"active": active[(task, route)].name if (task, route) in active else None,
                               "configured_default": configured_ref(settings, task, route)} for route in routes},
            "versions": [version_public(v) for v in versions],
        }
    return out
