from __future__ import annotations

import numpy as np
import pytest

from finetune.classification_metrics import classification_report, restrict_to_labels


def test_report_against_hand_computed_values():
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "c", "c"]
    r = classification_report(y_true, y_pred, ["a", "b", "c"])
    # rows: true, columns: predicted
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert r["n"] == 6
    assert r["accuracy"] == pytest.approx(4 / 6)
    # a: p=2/2 r=2/3 f1=0.8 | b: p=1/2 r=1/2 f1=0.5 | c: p=1/2 r=1 f1=2/3
    assert r["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert r["per_class"]["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert r["per_class"]["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert r["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert r["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    assert r["labels"] == ["a", "b", "c"]


def test_perfect_and_all_wrong():
    perfect = classification_report(["x", "y"], ["x", "y"])
    assert perfect["accuracy"] == perfect["macro_f1"] == perfect["macro_recall"] == 1.0
    wrong = classification_report(["x", "y"], ["y", "x"])
    assert wrong["accuracy"] == wrong["macro_f1"] == 0.0


def test_label_order_defaults_to_sorted_union():
    r = classification_report(["b", "a"], ["c", "a"])
    assert r["labels"] == ["a", "b", "c"]
    assert r["confusion_matrix"] == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]


def test_classes_absent_from_the_data_do_not_enter_macro_averages():
    r = classification_report(["a", "a", "b"], ["a", "a", "b"], ["a", "b", "c"])
    assert r["per_class"]["c"]["support"] == 0
    assert r["macro_f1"] == 1.0 and r["macro_recall"] == 1.0


def test_binary_case():
    # 4 positives, 4 negatives; TP=3 FN=1 FP=2 TN=2
    y_true = ["pos"] * 4 + ["neg"] * 4
    y_pred = ["pos", "pos", "pos", "neg", "pos", "pos", "neg", "neg"]
    r = classification_report(y_true, y_pred, ["neg", "pos"])
    assert r["per_class"]["pos"]["precision"] == pytest.approx(3 / 5)
    assert r["per_class"]["pos"]["recall"] == pytest.approx(3 / 4)
    assert r["per_class"]["neg"]["precision"] == pytest.approx(2 / 3)
    assert r["per_class"]["neg"]["recall"] == pytest.approx(2 / 4)
    f1_pos, f1_neg = 2 * 0.6 * 0.75 / 1.35, 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)
    assert r["macro_f1"] == pytest.approx((f1_pos + f1_neg) / 2)


def test_empty_and_mismatched():
    assert classification_report([], [], ["a"])["accuracy"] == 0.0
    with pytest.raises(ValueError):
        classification_report(["a"], [], ["a"])


LABELS = ["negative", "neutral", "positive"]
PROBA = np.array([[0.2, 0.5, 0.3], [0.45, 0.5, 0.05], [0.1, 0.1, 0.8]])


def test_restrict_to_binary_labels_ignores_neutral():
    assert restrict_to_labels(PROBA, LABELS, {"negative", "positive"}) == ["positive", "negative", "positive"]


def test_restrict_with_every_label_is_plain_argmax():
    assert restrict_to_labels(PROBA, LABELS, set(LABELS)) == ["neutral", "neutral", "positive"]


def test_restrict_with_unknown_labels_falls_back_to_all():
    assert restrict_to_labels(PROBA, LABELS, {"spam"}) == ["neutral", "neutral", "positive"]
    assert restrict_to_labels(PROBA, LABELS, set()) == ["neutral", "neutral", "positive"]
