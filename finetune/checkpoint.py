"""Training state shared by the recipes: the trainable (LoRA + head) weights, atomic
checkpoints for --resume, the portable base reference in adapter_config.json, and the
CPU 4-bit fix QLoRA needs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bot.errors import InputError


def keep_4bit_weights_trainable_on_cpu(model) -> None:
    """On CPUs with AVX512-BF16, bitsandbytes repacks 4-bit weights for inference at the
    first eval forward; the next training step then fails in matmul_4bit. Disable that."""
    import torch

    if torch.cuda.is_available():
        return
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def trainable_state(model) -> dict:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_trainable(model, path: Path) -> None:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    tmp = path / "trainable.safetensors.tmp"
    save_file(trainable_state(model), str(tmp))
    tmp.replace(path / "trainable.safetensors")


def load_trainable(model, path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    weights = load_file(str(path / "trainable.safetensors"))
    missing = [n for n, p in model.named_parameters() if p.requires_grad and n not in weights]
    if missing:
        raise InputError(f"{path}: checkpoint does not match the model (missing {missing[:3]}...)")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, w in weights.items():
            params[n].copy_(w.to(params[n].device))


def save_checkpoint(path: Path, model, optimizer, scheduler, state: dict) -> None:
    """Trainable weights + optimizer + scheduler + loop state, written atomically."""
    import torch

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_trainable(model, tmp)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state()}, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps(state))
    old = path.with_name(path.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def recover_checkpoint(path: Path) -> None:
    """A kill between the two renames of save_checkpoint leaves only checkpoint.old."""
    old = path.with_name(path.name + ".old")
    if not (path / "state.json").is_file() and (old / "state.json").is_file():
        old.rename(path)


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict:
    import torch

    load_trainable(model, path)
    opt = torch.load(path / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(opt["optimizer"])
    scheduler.load_state_dict(opt["scheduler"])
    torch.set_rng_state(opt["rng"])
    return json.loads((path / "state.json").read_text())


def rewrite_base_reference(out: Path, base_ref: str) -> None:
    """peft records the base's local path; keep the portable reference instead."""
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = base_ref
    cfg_path.write_text(json.dumps(cfg, indent=2))
