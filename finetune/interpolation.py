"""Averaging a retrained candidate with the active version's weights (WiSE-FT, Wortsman
et al. 2022): the candidate was fine-tuned from the active adapter, so every tensor of
one has its twin in the other, and `alpha * candidate + (1 - alpha) * active` keeps part
of what the candidate learnt while staying nearer to what the active model knew.
`finetune/retrain.py` tries a few alphas and lets the gate choose."""

from __future__ import annotations

import shutil
from pathlib import Path

from core.adapter_artifact import is_adapter_dir

WEIGHTS = "adapter_model.safetensors"


def can_interpolate(active_dir: str | Path, candidate_dir: str | Path) -> bool:
    """Both are adapters with the same tensors (names and shapes)."""
    from safetensors import safe_open

    active, candidate = Path(active_dir), Path(candidate_dir)
    if not (is_adapter_dir(active) and is_adapter_dir(candidate)
            and (active / WEIGHTS).is_file() and (candidate / WEIGHTS).is_file()):
        return False
    with safe_open(active / WEIGHTS, "pt") as a, safe_open(candidate / WEIGHTS, "pt") as c:
        if set(a.keys()) != set(c.keys()):
            return False
        return all(a.get_slice(k).get_shape() == c.get_slice(k).get_shape() for k in a.keys())


def interpolate(active_dir: str | Path, candidate_dir: str | Path, alpha: float, out_dir: str | Path) -> Path:
    """A copy of the candidate adapter whose weights are alpha * candidate + (1 - alpha) *
    active (in fp32, stored in the candidate's dtype). Its supportbot.json and model card
    are the candidate's, with the alpha recorded."""
    from safetensors.torch import load_file, save_file

    from core.adapter_artifact import load_meta, write_meta

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], not {alpha}")
    candidate, out = Path(candidate_dir), Path(out_dir)
    active_weights, candidate_weights = load_file(Path(active_dir) / WEIGHTS), load_file(candidate / WEIGHTS)
    mixed = {name: (alpha * t.float() + (1.0 - alpha) * active_weights[name].float()).to(t.dtype)
             for name, t in candidate_weights.items()}
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(candidate, out, ignore=shutil.ignore_patterns("checkpoint", WEIGHTS))
    save_file(mixed, out / WEIGHTS)
    meta = load_meta(out)
    meta["interpolation"] = {"alpha": alpha, "active": str(active_dir)}
    write_meta(out, meta)
    return out
