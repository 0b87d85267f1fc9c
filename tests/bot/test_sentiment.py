from __future__ import annotations

import numpy as np
import pytest

from bot.sentiment import SENTIMENT_LABELS, SentimentService, explain_text, normalise_label
from fixtures.fakes import KeywordClassifier


@pytest.fixture
def en():
    return KeywordClassifier("en-v1")


@pytest.fixture
def zh():
    return KeywordClassifier("zh-v1")


@pytest.fixture
def service(en, zh):
    return SentimentService(en, {"zh": zh, "ja": zh})


def test_routes_chinese_to_the_zh_model_and_the_rest_to_default(service, en, zh):
    texts = ["I love it", "服务太差了", "where is my order", "iPhone 坏了", "ありがとう", "12345"]
    results = service.classify(texts)
    assert [r.language for r in results] == ["en", "zh", "en", "zh", "ja", "und"]
    assert sorted(t for call in en.calls for t in call) == sorted(["I love it", "where is my order", "12345"])
    assert sorted(t for call in zh.calls for t in call) == sorted(["服务太差了", "iPhone 坏了", "ありがとう"])
    assert len(en.calls) == 1 and len(zh.calls) == 1  # one batch per model


def test_results_are_in_input_order(service):
    texts = ["this is bad", "我很喜欢", "great stuff", "太差了", "where is it", "好"]
    results = service.classify(texts)
    assert [r.label for r in results] == ["negative", "positive", "positive", "negative", "neutral", "positive"]


def test_scores_hold_all_three_labels_and_match_the_model(service, en):
    (r,) = service.classify(["good good"])
    assert set(r.scores) == set(SENTIMENT_LABELS)
    expected = en.predict_proba(["good good"])[0]
    for label, p in zip(en.labels, expected):
        assert r.scores[label] == pytest.approx(float(p), abs=1e-6)
    assert sum(r.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert r.score == max(r.scores.values()) == r.scores[r.label]
    assert r.explanation is None and "explanation" not in r.public()


def test_binary_model_gets_a_zero_neutral_score():
    service = SentimentService(KeywordClassifier("bin", labels=["NEG", "POS"]))
    (r,) = service.classify(["awful"])
    assert r.label == "negative"
    assert set(r.scores) == set(SENTIMENT_LABELS)
    assert r.scores["neutral"] == 0.0
    assert r.scores["negative"] + r.scores["positive"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("NEG", "negative"), (" Pos ", "positive"), ("neu", "neutral"), ("Negative", "negative"),
     ("0", "negative"), ("1", "positive"), ("angry", "angry")],
)
def test_normalise_label(raw, expected):
    assert normalise_label(raw) == expected


def test_labels_from_the_model_are_normalised():
    odd = KeywordClassifier("odd", labels=["Negative", "NEU", "pos"])
    service = SentimentService(odd)
    (r,) = service.classify(["i love it"])
    assert r.label == "positive"
    assert set(r.scores) == set(SENTIMENT_LABELS)


def test_single_model_serves_every_language(en):
    service = SentimentService(en)
    results = service.classify(["好", "good"])
    assert [r.label for r in results] == ["positive", "positive"]
    assert [t for call in en.calls for t in call] == ["好", "good"]


def test_empty_batch(service):
    assert service.classify([]) == []


def test_version_and_models(service, en):
    assert service.version == "en-v1+zh-v1"
    assert service.models() == {"default": "en-v1", "zh": "zh-v1", "ja": "zh-v1"}
    assert SentimentService(en).version == "en-v1"
    # the same model for several routes is named once
    assert SentimentService(en, {"zh": en}).version == "en-v1"


def test_public_shape(service):
    (r,) = service.classify(["great"], explain=True)
    public = r.public()
    assert set(public) == {"label", "score", "scores", "language", "explanation"}


# ---- explanations ---------------------------------------------------------------------------------


def test_explain_english_one_entry_per_word_and_punctuation(service):
    (r,) = service.classify(["I love this phone!"], explain=True)
    assert [e["token"] for e in r.explanation] == ["I", "love", "this", "phone", "!"]
    weights = {e["token"]: e["weight"] for e in r.explanation}
    assert r.label == "positive"
    # only "love" carries the label: removing it drops the positive probability
    assert weights["love"] > 0.1
    assert all(abs(weights[t]) < 1e-6 for t in ("I", "this", "phone", "!"))


def test_explain_chinese_one_entry_per_character(service):
    (r,) = service.classify(["服务太差了"], explain=True)
    assert [e["token"] for e in r.explanation] == list("服务太差了")
    weights = {e["token"]: e["weight"] for e in r.explanation}
    assert r.label == "negative" and weights["差"] > 0.1
    assert abs(weights["服"]) < 1e-6


def test_explain_mixed_text(service):
    (r,) = service.classify(["iPhone 坏了"], explain=True)
    assert [e["token"] for e in r.explanation] == ["iPhone", "坏", "了"]


def test_explain_weight_is_the_drop_in_probability(en):
    text = "good and bad"
    weights = explain_text(en, text, 2, "en")  # label index 2: positive
    base = en.predict_proba([text])[0, 2]
    without_good = en.predict_proba([" and bad"])[0, 2]
    assert weights[0] == {"token": "good", "weight": pytest.approx(float(base - without_good), abs=1e-6)}
    # removing "bad" makes the text more positive: a negative weight
    assert weights[2]["token"] == "bad" and weights[2]["weight"] < 0


def test_explain_scores_at_most_64_units(en):
    text = " ".join(f"w{i}" for i in range(100))
    assert len(explain_text(en, text, 1, "en")) == 64


def test_explain_without_units(en):
    assert explain_text(en, "   ", 1, "en") == []


def test_explain_with_a_real_tiny_model(tiny_classifier_dir, tmp_path):
    from bot.classifier import TextClassifier

    clf = TextClassifier.load(str(tiny_classifier_dir), tmp_path)
    service = SentimentService(clf)
    (r,) = service.classify(["the phone is great"], explain=True)
    assert [e["token"] for e in r.explanation] == ["the", "phone", "is", "great"]
    i = clf.labels.index(r.label)
    proba = clf.predict_proba(["the phone is great", " phone is great", "the  is great", "the phone  great",
                               "the phone is "])
    expected = proba[0, i] - proba[1:, i]
    np.testing.assert_allclose([e["weight"] for e in r.explanation], expected, atol=1e-5)
