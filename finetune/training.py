"""What both recipes (finetune/chat_recipe.py, finetune/classifier_recipe.py) do the same
way, as small functions each recipe calls in its own setup / train / save, as torchtune keeps
its `training/` utilities under its recipes."""

from __future__ import annotations

from pathlib import Path

from core.adapter_artifact import META_FILE, is_adapter_dir, load_meta


def init_from_problems(directory: str | Path, base: str, task: str | None = None) -> list[str]:
    """What is wrong with --init-from DIRECTORY for a run on --base `base` (and of `task`)."""
    if not is_adapter_dir(directory):
        return [f"--init-from {directory}: not a supportbot adapter directory (no {META_FILE})"]
    try:
        meta = load_meta(directory)
    except (OSError, ValueError) as exc:
        return [f"--init-from {directory}: unreadable {META_FILE} ({exc})"]
    if task is not None and meta.get("task") != task:
        return [f"--init-from {directory} is a {meta.get('task')} adapter, not a {task} adapter"]
    if meta.get("base") != base:
        return [f"--init-from {directory} was trained on base {meta.get('base')!r}, not --base {base!r}"]
    return []
