"""Training state shared by the recipes: the trainable (LoRA + head) weights, atomic
checkpoints for --resume, the portable base reference in adapter_config.json, the CPU 4-bit
fix QLoRA needs, and the two memory savers of a quantized base (weights copied off the mapped
file, gradient checkpointing)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from core.errors import InputError


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


def mapped_file_regions(suffix: str = ".safetensors") -> list[tuple[int, int]]:
    """[start, end) addresses of this process's mappings of files named *suffix (from
    /proc/self/maps; none where there is no /proc, as on macOS)."""
    regions = []
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                if line.rstrip().endswith(suffix):
                    start, end = (int(x, 16) for x in line.split()[0].split("-"))
                    regions.append((start, end))
    except OSError:
        pass
    return regions


def copy_mapped_weights(model, regions: list[tuple[int, int]] | None = None) -> int:
    """Give every CPU parameter and buffer that is a view of a mapped file (default: the
    *.safetensors mappings) memory of its own; returns the bytes copied.

    transformers maps the safetensors file instead of reading it. Quantizing reads every page
    of it, and the weights left in full precision (embeddings, norms, an untied lm_head, a
    classifier's head) stay views of the map, so the whole file stays mapped and the pages read
    stay in the process's RSS (about 300 MB of smollm2-135m's 540 MB file, for 113 MB of
    embeddings still in use). Once no tensor points into the map it is released. Tied weights
    stay tied (the shared Parameter gets the copy)."""
    if regions is None:
        regions = mapped_file_regions()
    if not regions:
        return 0

    def mapped(t) -> bool:
        return t.device.type == "cpu" and t.numel() > 0 and any(a <= t.data_ptr() < b for a, b in regions)

    copied, buffer_copies = 0, {}  # a buffer shared by two modules gets one copy
    for module in model.modules():
        for p in module._parameters.values():
            if p is not None and mapped(p):  # a tied Parameter is seen again, but no longer mapped
                p.data = p.data.clone()
                copied += p.numel() * p.element_size()
        for name, b in module._buffers.items():
            if b is not None and mapped(b):
                if id(b) not in buffer_copies:
                    buffer_copies[id(b)] = (b, b.clone())  # b kept: its id stays unique
                    copied += b.numel() * b.element_size()
                module._buffers[name] = buffer_copies[id(b)][1]
    return copied


def enable_gradient_checkpointing(model) -> None:
    """Keep only each layer's input during the forward pass and recompute the layer in the
    backward pass (Chen et al. 2016, "Training deep nets with sublinear memory cost"): the
    activations stored drop from every layer's to about one layer's, for one more forward pass
    per step. Non-reentrant checkpointing, which PyTorch recommends; input gradients on, so a
    model whose frozen embeddings feed LoRA layers still back-propagates (peft and
    transformers do this too; reentrant checkpointing needs it)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # the new name; recent transformers warn on the old one
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.enable_input_require_grads()
    if getattr(model.config, "use_cache", False):  # a KV cache is for generating; transformers would warn
        model.config.use_cache = False


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
