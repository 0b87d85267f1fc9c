"""Fixtures shared by the whole suite.

Plain `pytest` stays offline: the hub is switched off before anything imports
huggingface_hub, and every model the tests load is a tiny random one built here
(tests/fixtures/tiny.py), once per session, in a temporary directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# pytest's default "prepend" import mode puts tests/ on sys.path for this file, and then
# tests/bot, tests/storage, ... (folders without __init__.py) would shadow the real
# packages as namespace packages. The checkout goes first, so `import bot` is bot/.
_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

os.environ["HF_HUB_OFFLINE"] = "1"  # no network, ever
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from fixtures import tiny  # noqa: E402  (tests/fixtures, importable because tests/ is on sys.path)


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory) -> Path:
    """A tiny BertForSequenceClassification (negative/neutral/positive) + WordPiece tokenizer."""
    return tiny.build_bert_classifier(tmp_path_factory.mktemp("tiny") / "bert-classifier")


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory) -> Path:
    """A tiny BERT encoder without a head: a base model for the finetune recipe."""
    # deterministic: a fixed vocabulary. A trained WordPiece vocabulary differs from run to
    # run, and with it what 48 LoRA steps learn (test_lora_learns_the_task scored 8/15 once)
    return tiny.build_bert_base(tmp_path_factory.mktemp("tiny") / "bert-base", deterministic=True)


@pytest.fixture(scope="session")
def tiny_causal_lm_dir(tmp_path_factory) -> Path:
    """A tiny Llama causal LM whose tokenizer has no pad token."""
    return tiny.build_causal_lm(tmp_path_factory.mktemp("tiny") / "llama-causal")


@pytest.fixture(scope="session")
def sentiment_files(tmp_path_factory) -> dict[str, Path]:
    """train.csv (60 rows, 20 per label) and eval.csv (15 rows), disjoint texts."""
    root = tmp_path_factory.mktemp("data")
    rows = tiny.labelled_examples(n_per_label=25, seed=0)
    by_label: dict[str, list] = {}
    for row in rows:
        by_label.setdefault(row[1], []).append(row)
    eval_rows = [r for label in sorted(by_label) for r in by_label[label][:5]]
    train_rows = [r for r in rows if r not in eval_rows]
    return {"train": tiny.write_csv(root / "train.csv", train_rows),
            "eval": tiny.write_csv(root / "eval.csv", eval_rows)}
