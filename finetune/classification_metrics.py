"""Classification metrics: accuracy, macro-F1, per-class precision/recall, confusion matrix.

Binary benchmark sets (negative/positive) scored by a 3-class model are scored by
comparing only the labels the data uses (`restrict_to_labels`), as the literature does.
"""

from __future__ import annotations

import numpy as np


def restrict_to_labels(proba: np.ndarray, model_labels: list[str], data_labels: set[str]) -> list[str]:
    """Argmax over the model labels that occur in the data (all of them if none/unknown)."""
    keep = [i for i, label in enumerate(model_labels) if label in data_labels]
    if not keep or len(keep) == len(model_labels):
        keep = list(range(len(model_labels)))
    sub = proba[:, keep]
    return [model_labels[keep[j]] for j in sub.argmax(axis=1)]


def classification_report(y_true: list[str], y_pred: list[str], labels: list[str] | None = None) -> dict:
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    labels = labels or sorted(set(y_true) | set(y_pred))
    index = {label: i for i, label in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        cm[index[t], index[p]] += 1
    per_class = {}
    f1s, recalls = [], []
    for i, label in enumerate(labels):
        tp = int(cm[i, i])
        predicted, actual = int(cm[:, i].sum()), int(cm[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
        if actual:  # classes absent from the data do not enter the macro averages
            f1s.append(f1)
            recalls.append(recall)
    n = int(cm.sum())
    return {
        "n": n,
        "accuracy": float(np.trace(cm) / n) if n else 0.0,
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "macro_recall": float(np.mean(recalls)) if recalls else 0.0,
        "per_class": per_class,
        "labels": labels,
        "confusion_matrix": cm.tolist(),
    }
