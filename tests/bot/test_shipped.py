"""The adapters shipped in bot/shipped are complete and describe how they were made."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors import safe_open

from core.model_refs import PACKAGED, PACKAGED_HUB_IDS, SHIPPED, SHIPPED_DIR, resolve

pytestmark = pytest.mark.parametrize("name", sorted(SHIPPED))

HUB_BASES = {"minilm-l6": "sentence-transformers/all-MiniLM-L6-v2", "smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct",
             "gemma3-270m": "google/gemma-3-270m", "me5-small": "intfloat/multilingual-e5-small"}
# Converted packaged models are shared with `make run` (./var/models), as in tests/integration.
MODEL_CACHE = Path(__file__).resolve().parents[2] / "var" / "models"
TEXTS = {"en": ["The refund took forever and nobody answered my emails.", "Where is my order?",
                "Thank you so much, the new one works perfectly!", "I want to cancel my order"],
         "zh": ["这部电影很无聊。", "请问怎么下载电子发票？", "客服态度非常好，问题很快就解决了。"]}


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
    assert config["base_model_name_or_path"] == HUB_BASES[meta["base"]]


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


def test_adapter_config_names_the_base_by_its_hub_id_and_it_resolves_offline(name, tmp_path):
    """PEFT, vLLM and TGI read base_model_name_or_path: a hub id they can find; here the
    resolver serves it from the packaged copy without the network."""
    meta = json.loads((SHIPPED_DIR / name / "supportbot.json").read_text())
    base = json.loads((SHIPPED_DIR / name / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert PACKAGED_HUB_IDS[base] == meta["base"]
    if PACKAGED[meta["base"]].kind == "dir":  # nothing to convert: resolvable in any cache
        resolved = resolve(base, tmp_path)
        assert resolved.local and not resolved.adapter
        assert resolved.path == resolve(meta["base"], tmp_path).path


def test_model_card_has_hub_metadata(name):
    card = (SHIPPED_DIR / name / "README.md").read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n", card, re.S)
    assert match, "the model card starts with YAML front matter"
    front = yaml.safe_load(match.group(1))
    meta = json.loads((SHIPPED_DIR / name / "supportbot.json").read_text())
    assert front["base_model"] == HUB_BASES[meta["base"]] and front["library_name"] == "peft"
    assert front["license"] in ("apache-2.0", "gemma")
    expected = {"intent-me5": ["zh", "en"]}.get(name, ["zh"] if "-zh" in name else ["en"])  # me5 intent reads both
    assert front["language"] == expected
    assert front["pipeline_tag"] == ("text-generation" if meta["task"] == "chat" else "text-classification")
    results = front["model-index"][0]["results"]
    assert results and all(m["value"] is not None for r in results for m in r["metrics"])
    report = json.loads((SHIPPED_DIR / name / "eval_report.json").read_text())
    values = {m["type"]: m["value"] for m in results[0]["metrics"]}  # the held-out split; benchmarks follow
    if meta["task"] == "chat":
        assert values["perplexity"] == round(report["perplexity"], 4)
    else:
        assert values["accuracy"] == round(report["accuracy"], 4) and values["f1"] == round(report["macro_f1"], 4)
        labels = json.loads((SHIPPED_DIR / name / "config.json").read_text())["id2label"]
        assert labels == {str(i): label for i, label in enumerate(meta["labels"])}


@pytest.mark.slow
def test_plain_peft_loads_a_shipped_classifier_with_the_products_scores(name):
    """No supportbot code in the loading path but the resolver's local path for the hub id:
    PeftConfig -> the base by its hub id -> AutoConfig of the adapter dir (the labels) ->
    AutoModelForSequenceClassification -> PeftModel.from_pretrained; the scores equal the
    product's classifier (which merges the adapter into the base)."""
    import torch
    from peft import PeftConfig, PeftModel
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from bot.classifier import TextClassifier

    meta = json.loads((SHIPPED_DIR / name / "supportbot.json").read_text())
    if meta["task"] == "chat":
        pytest.skip("a chat adapter: no labels (its base resolves like the others)")
    adapter = SHIPPED_DIR / name
    if PACKAGED[meta["base"]].kind != "dir" and not (MODEL_CACHE / meta["base"] / ".complete").is_file():
        pytest.skip(f"{meta['base']} is not converted yet (make run / supportbot models prepare)")
    hub_id = PeftConfig.from_pretrained(str(adapter)).base_model_name_or_path
    base = resolve(hub_id, MODEL_CACHE, convert=False)
    config = AutoConfig.from_pretrained(str(adapter))
    assert config.id2label == dict(enumerate(meta["labels"]))
    tokenizer = AutoTokenizer.from_pretrained(base.path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(base.path, config=config, local_files_only=True,
                                                               dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(adapter)).eval()
    texts = TEXTS["zh" if "-zh" in name else "en"]
    expected = TextClassifier.load(name, MODEL_CACHE).predict_proba(texts)
    with torch.inference_mode():
        for text, want in zip(texts, expected):
            enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=meta["max_length"])
            got = torch.softmax(model(**enc).logits.float(), dim=-1)[0].numpy()
            assert np.allclose(got, want, atol=1e-4), (text, got, want)
            assert config.id2label[int(got.argmax())] == meta["labels"][int(want.argmax())]
