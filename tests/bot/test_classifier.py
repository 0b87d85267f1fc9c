from __future__ import annotations

import json

import numpy as np
import pytest

from bot.classifier import TextClassifier, predict_proba, read_adapter_meta
from core.errors import ModelLoadError

TEXTS = [
    "the phone is great",
    "where is my order",
    "bad",
    "your service is awful and the delivery was terrible, i hate this app and my refund is broken",
    "服务太差了",
    "iphone 坏了",
    "the support is wonderful, thanks",
    "ok",
]


@pytest.fixture(scope="module")
def clf(tiny_classifier_dir, tmp_path_factory):
    return TextClassifier.load(str(tiny_classifier_dir), tmp_path_factory.mktemp("cache"), batch_size=3)


def _one_by_one(c: TextClassifier, texts) -> np.ndarray:
    return np.concatenate([c.predict_proba([t]) for t in texts])


def test_load_reads_labels_and_name(clf, tiny_classifier_dir):
    assert clf.labels == ["negative", "neutral", "positive"]
    assert clf.name == str(tiny_classifier_dir)
    assert clf.model.training is False


def test_predict_proba_shape_and_rows_sum_to_one(clf):
    proba = clf.predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), 3)
    assert proba.dtype == np.float32
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    # a random model still tells texts apart: the rows are not all the same
    assert np.ptp(proba, axis=0).max() > 1e-3


def test_input_order_is_kept_despite_length_sorting(clf):
    # batch_size=3 over texts of very different lengths: the batches are sorted by length
    batched = clf.predict_proba(TEXTS)
    np.testing.assert_allclose(batched, _one_by_one(clf, TEXTS), atol=1e-5)
    reversed_ = clf.predict_proba(TEXTS[::-1])
    np.testing.assert_allclose(reversed_[::-1], batched, atol=1e-5)


@pytest.mark.parametrize("batch_size", [1, 2, 5, 64])
def test_batch_size_does_not_change_scores(clf, batch_size):
    expected = clf.predict_proba(TEXTS)
    got = predict_proba(clf.model, clf.tokenizer, TEXTS, batch_size=batch_size, max_length=clf.max_length)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_empty_input(clf):
    assert clf.predict_proba([]).shape == (0, 3)


def test_long_text_is_truncated_to_max_length(clf):
    long_text = "the phone is great " * 400  # ~1600 tokens
    proba = predict_proba(clf.model, clf.tokenizer, [long_text, "bad"], max_length=64)
    assert proba.shape == (2, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    # truncation keeps the first 64 tokens: the same scores as the text cut there by hand
    head = clf.tokenizer.decode(clf.tokenizer(long_text, truncation=True, max_length=64)["input_ids"],
                                skip_special_tokens=True)
    np.testing.assert_allclose(proba[0], predict_proba(clf.model, clf.tokenizer, [head])[0], atol=1e-5)


def test_long_text_never_exceeds_the_models_positions(clf):
    long_text = "the phone is great " * 400
    proba = clf.predict_proba([long_text, "bad"])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_predict_proba_restores_training_mode(clf):
    clf.model.train()
    try:
        clf.predict_proba(["good"])
        assert clf.model.training is True
    finally:
        clf.model.eval()


def test_causal_lm_without_pad_token_classifies_padded_batches(tiny_causal_lm_dir, tmp_path):
    c = TextClassifier.load(str(tiny_causal_lm_dir), tmp_path / "cache", batch_size=4)
    # the pad token is borrowed from eos, and the model knows its id (it pools the last non-pad token)
    assert c.tokenizer.pad_token == c.tokenizer.eos_token
    assert c.model.config.pad_token_id == c.tokenizer.eos_token_id is not None
    assert c.labels == ["negative", "neutral", "positive"]
    proba = c.predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    # padding must not change a text's scores: batched == one at a time
    np.testing.assert_allclose(proba, _one_by_one(c, TEXTS), atol=1e-5)


# ---- adapter directories: the errors come before any weights load -------------------------------


def _adapter(tmp_path, meta) -> str:
    d = tmp_path / "adapter"
    d.mkdir(exist_ok=True)
    (d / "supportbot.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return str(d)


def test_unreadable_adapter_meta(tmp_path):
    path = _adapter(tmp_path, "{not json")
    with pytest.raises(ModelLoadError, match="unreadable supportbot.json"):
        TextClassifier.load(path, tmp_path / "cache")


def test_adapter_meta_missing_keys(tmp_path):
    path = _adapter(tmp_path, {"base": "minilm-l6"})
    with pytest.raises(ModelLoadError, match="lacks labels, task"):
        read_adapter_meta(path)


def test_adapter_on_an_adapter_is_refused(tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "supportbot.json").write_text(json.dumps({"base": "minilm-l6", "labels": ["a", "b"], "task": "intent"}))
    path = _adapter(tmp_path, {"base": str(inner), "labels": ["a", "b"], "task": "intent"})
    with pytest.raises(ModelLoadError, match="itself an adapter"):
        TextClassifier.load(path, tmp_path / "cache")
