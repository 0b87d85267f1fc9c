"""The adapters shipped in bot/shipped are complete and describe how they were made."""

from __future__ import annotations

import json

import pytest
from safetensors import safe_open

from bot.model_refs import PACKAGED, SHIPPED, SHIPPED_DIR

pytestmark = pytest.mark.parametrize("name", sorted(SHIPPED))


def test_shipped_adapter_is_complete(name):
    root = SHIPPED_DIR / name
    for f in ("adapter_config.json", "adapter_model.safetensors", "supportbot.json", "README.md", "eval_report.json"):
        assert (root / f).is_file(), f"{name}: {f} missing"
    meta = json.loads((root / "supportbot.json").read_text())
    assert meta["base"] in PACKAGED, "shipped adapters must sit on a packaged (offline) base"
    assert meta["task"] in ("sentiment", "intent", "chat")
    if meta["task"] == "chat":
        assert (root / "tokenizer_config.json").is_file() and "bitext" in (root / "README.md").read_text().lower()
        return
    assert len(meta["labels"]) == len(set(meta["labels"])) >= 2
    if meta["task"] == "sentiment":
        assert meta["labels"] == ["negative", "neutral", "positive"]
    assert meta["data"] and all(len(d["sha256"]) == 64 for d in meta["data"])
    assert all("/" not in d["path"] for d in meta["data"]), "no local paths in a shipped card"
    config = json.loads((root / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == meta["base"]


def test_shipped_adapter_weights_include_the_head(name):
    with safe_open(str(SHIPPED_DIR / name / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any("lora_A" in k for k in keys) and any("lora_B" in k for k in keys)
    if name.startswith("chat-"):  # a causal LM keeps its own head: LoRA weights only, fp16
        assert (SHIPPED_DIR / name / "adapter_model.safetensors").stat().st_size < 5_000_000
        return
    assert any(k.split(".")[-2] in ("classifier", "score") or ".modules_to_save." in k or "classifier" in k or "score" in k
               for k in keys), "the classification head must be saved with the adapter"
    assert (SHIPPED_DIR / name / "adapter_model.safetensors").stat().st_size < 5_000_000
