"""int8 dynamic quantization of classifiers (bot/quantization.py) and the setting that turns it on."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from bot.classifier import TextClassifier
from core.config import Settings, settings_with
from bot.quantization import int8_layer_names, quantize_model
from bot.runtime import Runtime
from fixtures import tiny

QuantizedLinear = torch.ao.nn.quantized.dynamic.Linear


def texts() -> list[str]:
    return [t for t, _ in tiny.labelled_examples(n_per_label=20, seed=3)] + tiny.CORPUS[-13:]


@pytest.fixture(scope="module")
def fixed_classifier_dir(tmp_path_factory):
    """The tiny BERT classifier over the fixed vocabulary (the trained one may differ
    between runs): the same weights every run, predicting all three labels."""
    from transformers import BertForSequenceClassification

    tokenizer = tiny._bert_tokenizer(deterministic=True)
    torch.manual_seed(1)
    labels = tiny.SENTIMENT_LABELS
    model = BertForSequenceClassification(tiny._bert_config(
        len(tokenizer), tokenizer.pad_token_id, num_labels=3, id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}))
    path = tmp_path_factory.mktemp("tiny") / "bert-fixed"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_int8_bert_quantizes_the_feed_forward_layers_only(tiny_classifier_dir, tmp_path):
    clf = TextClassifier.load(str(tiny_classifier_dir), tmp_path, quantize="int8")
    layers = dict(clf.model.named_modules())
    quantized = {name for name, m in layers.items() if isinstance(m, QuantizedLinear)}
    assert quantized and quantized == set(int8_layer_names(TextClassifier.load(str(tiny_classifier_dir), tmp_path).model))
    assert all(name.endswith(("intermediate.dense", "output.dense")) and "attention" not in name for name in quantized)
    for name in ("classifier", "bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.0.attention.output.dense"):
        assert isinstance(layers[name], torch.nn.Linear) and not isinstance(layers[name], QuantizedLinear)


def test_int8_predictions_agree_with_fp32(fixed_classifier_dir, tmp_path):
    fp32 = TextClassifier.load(str(fixed_classifier_dir), tmp_path)
    int8 = TextClassifier.load(str(fixed_classifier_dir), tmp_path, quantize="int8")
    batch = texts()
    p32, p8 = fp32.predict_proba(batch), int8.predict_proba(batch)
    assert p8.shape == p32.shape and np.allclose(p8.sum(axis=1), 1.0, atol=1e-5)
    assert len(set(p32.argmax(axis=1))) == 3  # a model that says one label for all would prove nothing
    agreement = float((p32.argmax(axis=1) == p8.argmax(axis=1)).mean())
    assert agreement >= 0.95, agreement  # measured: 1.0 (73 texts)
    assert float(np.abs(p32 - p8).mean()) < 0.03  # measured: 0.007


def test_none_leaves_the_model_alone_and_unknown_modes_are_refused(tiny_classifier_dir, tmp_path):
    clf = TextClassifier.load(str(tiny_classifier_dir), tmp_path)
    assert quantize_model(clf.model, "none") is clf.model
    assert not any(isinstance(m, QuantizedLinear) for m in clf.model.modules())
    with pytest.raises(ValueError, match="unknown quantization"):
        quantize_model(clf.model, "int4")


def test_an_unmeasured_architecture_gets_every_linear_layer_but_the_head_and_a_warning(tiny_causal_lm_dir, tmp_path,
                                                                                      caplog):
    clf = TextClassifier.load(str(tiny_causal_lm_dir), tmp_path)
    with caplog.at_level(logging.WARNING, logger="bot.quantization"):
        names = int8_layer_names(clf.model)
    assert "never measured" in caplog.text
    assert names and "score" not in names and any("mlp" in n for n in names) and any("self_attn" in n for n in names)
    before = clf.predict_proba(["good", "bad service"])
    clf.model = quantize_model(clf.model, "int8")
    assert clf.predict_proba(["good", "bad service"]).shape == before.shape


def test_the_setting_switches_quantization_and_micro_batching(tiny_classifier_dir, tmp_path):
    def sentiment(**settings):
        runtime = Runtime.start(settings_with(home=tmp_path / str(len(settings)), sentiment_model=str(tiny_classifier_dir),
                                              sentiment_model_zh="none", **settings))
        try:
            return runtime.sentiment
        finally:
            runtime.close()

    default = sentiment()
    assert Settings().sentiment_quantize == "none"
    assert not any(isinstance(m, QuantizedLinear) for m in default.default.model.modules())
    assert default.batchers  # the server batches concurrent calls by default
    on = sentiment(sentiment_quantize="int8", sentiment_micro_batching=False)
    assert any(isinstance(m, QuantizedLinear) for m in on.default.model.modules())
    assert not on.batchers
    assert [r.language for r in on.classify(["good", "bad"])] == ["en", "en"]


def test_the_setting_is_validated(monkeypatch):
    monkeypatch.setenv("SUPPORTBOT_SENTIMENT_QUANTIZE", "int4")
    with pytest.raises(ValidationError, match="sentiment_quantize"):
        Settings()
    monkeypatch.setenv("SUPPORTBOT_SENTIMENT_QUANTIZE", "int8")
    assert Settings().sentiment_quantize == "int8"


def test_bf16_casts_the_model_and_keeps_its_predictions(fixed_classifier_dir, tmp_path):
    fp32 = TextClassifier.load(str(fixed_classifier_dir), tmp_path)
    bf16 = TextClassifier.load(str(fixed_classifier_dir), tmp_path, dtype="bf16")
    assert {p.dtype for p in bf16.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in fp32.model.parameters()} == {torch.float32}
    batch = texts()
    p32, p16 = fp32.predict_proba(batch), bf16.predict_proba(batch)
    assert p16.dtype == np.float32 and np.allclose(p16.sum(axis=1), 1.0, atol=1e-5)
    assert len(set(p32.argmax(axis=1))) == 3
    assert float(np.abs(p32 - p16).max()) < 0.05
    assert float((p32.argmax(axis=1) == p16.argmax(axis=1)).mean()) >= 0.9


def test_int8_wins_over_bf16(fixed_classifier_dir, tmp_path):
    clf = TextClassifier.load(str(fixed_classifier_dir), tmp_path, quantize="int8", dtype="bf16")
    assert any(isinstance(m, QuantizedLinear) for m in clf.model.modules())
    assert clf.model.classifier.weight.dtype == torch.float32


@pytest.mark.parametrize("setting,amx,expected,embeddings", [
    ("auto", True, torch.bfloat16, torch.float32), ("auto", False, torch.float32, torch.float32),
    ("fp32", True, torch.float32, torch.float32), ("bf16", False, torch.bfloat16, torch.bfloat16)])
def test_the_inference_dtype_setting_reaches_sentiment_intent_and_embeddings(
        tiny_classifier_dir, tmp_path, monkeypatch, setting, amx, expected, embeddings):
    """auto: the classifiers in bf16 where the CPU has AMX; retrieval stays fp32 (bf16
    moved a Chinese question off its article in eval_answers); bf16 asked: everything."""
    import core.hardware

    monkeypatch.setattr(core.hardware, "cpu_has_amx", lambda: amx)
    runtime = Runtime.start(settings_with(home=tmp_path, sentiment_model=str(tiny_classifier_dir),
                                          sentiment_model_zh="none", intent_model=str(tiny_classifier_dir),
                                          intent_model_zh=None, embedding_model=str(tiny_classifier_dir),
                                          embedding_model_multilingual=None, inference_dtype=setting))
    try:
        models = [runtime.sentiment.default.model, runtime.intent.classifier.model,
                  runtime.embedder.embedders[0].model]
        assert [next(m.parameters()).dtype for m in models] == [expected, expected, embeddings]
        assert runtime.sentiment.classify(["good"])[0].label in tiny.SENTIMENT_LABELS
    finally:
        runtime.close()


def test_the_inference_dtype_setting_is_validated(monkeypatch):
    from core.hardware import resolve_inference_dtype

    monkeypatch.setenv("SUPPORTBOT_INFERENCE_DTYPE", "fp8")
    with pytest.raises(ValidationError, match="inference_dtype"):
        Settings()
    with pytest.raises(ValueError, match="fp8"):
        resolve_inference_dtype("fp8")
