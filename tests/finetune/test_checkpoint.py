"""finetune/checkpoint.py's memory savers: weights copied off the mapped safetensors file, and
gradient checkpointing (the checkpoints for --resume are tested through the recipes)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from finetune.checkpoint import copy_mapped_weights, enable_gradient_checkpointing, mapped_file_regions

needs_proc_maps = pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads /proc/self/maps (Linux)")


def _in(regions, t) -> bool:
    return any(a <= t.data_ptr() < b for a, b in regions)


def _file_mapped(path: Path) -> bool:
    return any(line.rstrip().endswith(str(path)) for line in Path("/proc/self/maps").read_text().splitlines())


@needs_proc_maps
def test_copy_mapped_weights_gives_views_of_the_file_memory_of_their_own(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    model = torch.nn.Module()
    model.emb, model.norm, model.head = torch.nn.Embedding(50, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 50, bias=False)
    model.head.weight = model.emb.weight  # tied, as smollm2's lm_head
    model.norm.register_buffer("scale", torch.rand(16))
    model.other = torch.nn.Linear(16, 4)  # in memory of its own from the start
    path = tmp_path / "model.safetensors"
    save_file({"emb": model.emb.weight.data, "norm_w": model.norm.weight.data, "norm_b": model.norm.bias.data,
               "scale": model.norm.scale}, str(path))
    stored = load_file(str(path))  # maps the file, as transformers does
    regions = mapped_file_regions()
    assert stored and all(_in(regions, t) for t in stored.values()), "safetensors no longer maps the file"
    model.emb.weight.data, model.norm.weight.data, model.norm.bias.data = stored["emb"], stored["norm_w"], stored["norm_b"]
    model.norm.scale = stored["scale"]
    expected = {k: t.clone() for k, t in stored.items()}
    other_ptr = model.other.weight.data_ptr()
    del stored

    copied = copy_mapped_weights(model)

    assert copied == (50 * 16 + 16 + 16 + 16) * 4  # the tied weight once
    tensors = {"emb": model.emb.weight, "norm_w": model.norm.weight, "norm_b": model.norm.bias, "scale": model.norm.scale}
    for name, t in tensors.items():
        assert not _in(regions, t), name
        torch.testing.assert_close(t.detach(), expected[name], rtol=0, atol=0)
    assert model.head.weight is model.emb.weight  # still tied
    assert isinstance(model.emb.weight, torch.nn.Parameter) and model.emb.weight.requires_grad
    assert model.other.weight.data_ptr() == other_ptr  # not mapped: left alone
    assert copy_mapped_weights(model) == 0
    gc.collect()
    assert not _file_mapped(path)  # nothing points into the map any more: released


@needs_proc_maps
def test_a_4bit_base_lets_go_of_its_weights_file(tiny_causal_lm_dir, tmp_path):
    """The recipes' case: a quantized load keeps the embeddings and norms as views of the map."""
    import bitsandbytes as bnb
    import torch
    from safetensors.torch import load_file

    from core.model_refs import resolve
    from finetune.chat_recipe import ChatArgs, build_bnb_config
    from finetune.chat_model import load_base_lm

    model = load_base_lm(resolve(str(tiny_causal_lm_dir), tmp_path), quantization_config=build_bnb_config(ChatArgs(qlora=True)),
                         device_map={"": "cpu"})
    path = tiny_causal_lm_dir / "model.safetensors"
    regions = mapped_file_regions()
    full_precision = {n: p for n, p in model.named_parameters() if not isinstance(p, bnb.nn.Params4bit)}
    assert "model.embed_tokens.weight" in full_precision and "model.norm.weight" in full_precision
    assert _file_mapped(path) and any(_in(regions, p) for p in full_precision.values())

    copied = copy_mapped_weights(model)

    assert copied == sum(p.numel() * p.element_size() for p in full_precision.values())
    assert not any(_in(regions, t) for t in [*model.parameters(), *model.buffers()])
    gc.collect()
    assert not _file_mapped(path)
    stored = load_file(str(path))
    for name, p in full_precision.items():
        torch.testing.assert_close(p.detach(), stored[name], rtol=0, atol=0)


def test_nothing_to_copy_without_mapped_files():
    import torch

    model = torch.nn.Linear(4, 4)
    ptr = model.weight.data_ptr()
    assert copy_mapped_weights(model, regions=[]) == 0 and model.weight.data_ptr() == ptr


@pytest.mark.parametrize("peft", [False, True], ids=["full", "lora"])
def test_gradient_checkpointing_recomputes_and_gives_the_same_gradients(tiny_causal_lm_dir, peft):
    """Each layer runs again in the backward pass, and the gradients are those without it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    def build(checkpointing: bool):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm_dir, dtype=torch.float32)
        if checkpointing:
            enable_gradient_checkpointing(model)
        if peft:  # frozen embeddings feeding LoRA layers
            model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear",
                                                     init_lora_weights=False))  # B != 0: every LoRA weight gets a gradient
        return model.train()

    ids = torch.randint(3, 300, (2, 12), generator=torch.Generator().manual_seed(1))
    grads, calls = {}, {}
    for checkpointing in (False, True):
        model = build(checkpointing)
        mlp_calls = [0]
        for layer in model.get_base_model().model.layers if peft else model.model.layers:
            # A pre-hook: the recomputation stops as soon as it has what the backward pass needs,
            # before the MLP returns (torch.utils.checkpoint's early stop).
            layer.mlp.register_forward_pre_hook(lambda *_: mlp_calls.__setitem__(0, mlp_calls[0] + 1))
        model(input_ids=ids, labels=ids).loss.backward()
        calls[checkpointing] = mlp_calls[0]
        grads[checkpointing] = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    assert calls == {False: 2, True: 4}  # 2 layers: once each, then again in the backward pass
    assert grads[True].keys() == grads[False].keys() and grads[False]
    if peft:
        assert all("lora_" in n for n in grads[False])
    for name, g in grads[False].items():
        assert g.abs().sum() > 0, name
        torch.testing.assert_close(grads[True][name], g, rtol=1e-5, atol=1e-6)
