from __future__ import annotations

import numpy as np
import pytest

from core.errors import InputError
from finetune.data import Example
from finetune.evaluate import evaluate, format_report

LABELS = ["negative", "neutral", "positive"]


def keyword_proba(texts):
    rows = []
    for t in texts:
        if "good" in t:
            rows.append([0.1, 0.5, 0.4])  # neutral on top, positive second
        elif "bad" in t:
            rows.append([0.6, 0.3, 0.1])
        else:
            rows.append([0.2, 0.6, 0.2])
    return np.array(rows)


def test_binary_data_is_scored_without_the_neutral_class():
    examples = [Example("good", "positive"), Example("bad", "negative"), Example("good too", "positive"),
                Example("so bad", "positive")]
    report = evaluate(keyword_proba, LABELS, examples, chunk=3, progress=False)
    assert report["labels"] == ["negative", "positive"]
    # neutral is never predicted although it has the highest score for "good"
    assert report["confusion_matrix"] == [[1, 0], [1, 2]]
    assert report["accuracy"] == pytest.approx(3 / 4)


def test_three_class_data_uses_every_label():
    examples = [Example("good", "positive"), Example("hello", "neutral"), Example("bad", "negative")]
    report = evaluate(keyword_proba, LABELS, examples, progress=False)
    assert report["labels"] == LABELS
    assert report["accuracy"] == pytest.approx(2 / 3)  # "good" -> neutral


def test_unknown_data_label():
    with pytest.raises(InputError, match="spam"):
        evaluate(keyword_proba, LABELS, [Example("x", "spam")], progress=False)


def test_chunks_cover_every_example():
    seen = []

    def predict(texts):
        seen.extend(texts)
        return keyword_proba(texts)

    examples = [Example(f"good {i}", "positive") for i in range(10)]
    assert evaluate(predict, LABELS, examples, chunk=4, progress=False)["n"] == 10
    assert seen == [e.text for e in examples]


def test_format_report():
    report = evaluate(keyword_proba, LABELS, [Example("good", "positive"), Example("bad", "negative")], progress=False)
    text = format_report(report)
    assert "accuracy 1.0000" in text and "macro-F1 1.0000" in text
    assert "negative" in text and "positive" in text and "confusion matrix" in text


def test_unrestricted_evaluation_can_predict_labels_absent_from_the_data():
    # "good" has neutral on top and positive second; the data has no neutral rows:
    # restricted scoring picks positive, unrestricted scoring says neutral (and is wrong).
    examples = [Example("good", "positive"), Example("bad", "negative")]
    restricted = evaluate(keyword_proba, LABELS, examples, progress=False)
    free = evaluate(keyword_proba, LABELS, examples, restrict=False, progress=False)
    assert restricted["accuracy"] == 1.0
    assert free["accuracy"] == 0.5 and "neutral" in free["labels"]
