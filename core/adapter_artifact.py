"""The adapter artifact's own file, supportbot.json: the one module that writes, reads and
validates it (bot serves adapters, finetune makes and continues them; both come here).

A supportbot adapter directory holds peft's adapter_config.json and adapter_model.safetensors
(or, for a full fine-tune, the model itself) and supportbot.json, with the FIELDS below: kind
(classifier or chat), task, version, base (the model reference it was trained on), labels
(classifiers), lora, metrics... Its presence is what makes a directory an adapter
(core.model_refs.resolve).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from core.errors import InputError, ModelLoadError

META_FILE = "supportbot.json"
# The fields the recipes write, in this order (a classifier has labels and teacher, chat not).
FIELDS = ("format", "kind", "task", "version", "base", "labels", "max_length", "lora", "quantization", "data",
          "eval_file", "init_from", "teacher", "hyperparameters", "metrics", "created_at")


class NotAnObject(ValueError):
    """supportbot.json parses, but not to a JSON object."""


def meta_path(directory: str | Path) -> Path:
    return Path(directory) / META_FILE


def is_adapter_dir(directory: str | Path) -> bool:
    return meta_path(directory).is_file()


def write_meta(directory: str | Path, meta: dict) -> None:
    """supportbot.json with `meta` in its key order, written whole or not at all."""
    path = meta_path(directory)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def load_meta(directory: str | Path) -> dict:
    """The parsed supportbot.json. FileNotFoundError when there is none; OSError or
    ValueError (also UnicodeDecodeError, json.JSONDecodeError) when it cannot be read as a
    JSON object."""
    meta = json.loads(meta_path(directory).read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise NotAnObject(f"{META_FILE} is not a JSON object")
    return meta


def read_meta(directory: str | Path, *, require: tuple[str, ...] = ("base", "task"), task: str | None = None) -> dict:
    """supportbot.json for loading the adapter: ModelLoadError (naming the directory) when it
    is unreadable, lacks one of `require`, or (given `task`) belongs to another task."""
    try:
        meta = load_meta(directory)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{directory}: unreadable {META_FILE} ({exc}); retrain or restore the adapter") from exc
    if task is not None and meta.get("task") != task:
        raise ModelLoadError(f"{directory} is not a {task} adapter (task {meta.get('task')!r}): give a {task} model")
    missing = [k for k in require if k not in meta]
    if missing:
        raise ModelLoadError(f"{directory}/{META_FILE} lacks {', '.join(missing)}: not a supportbot adapter")
    return meta


def check_meta(directory: str | Path, task: str, what: str) -> dict:
    """supportbot.json before a version is served for `task`: InputError (one line, starting
    with `what`) unless it is a readable JSON object of that task."""
    try:
        meta = load_meta(directory)
    except FileNotFoundError:
        raise InputError(f"{what}: no {META_FILE}; not a supportbot adapter directory") from None
    except NotAnObject as exc:
        raise InputError(f"{what}: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{what}: {META_FILE} is unreadable ({exc})") from exc
    if meta.get("task") != task:
        other = meta.get("task")
        raise InputError(f"{what}: a model for the {other} task, not {task}" if other
                         else f"{what}: {META_FILE} names no task; expected {task!r}")
    return meta
