"""Evaluate a classifier on a labelled file: `supportbot eval classifier`.

With `restrict=True` (the default for sentiment), labels absent from the data are left
out of the argmax, so a 3-class sentiment model is scored on binary sets (SST-2,
ChnSentiCorp) by comparing its negative and positive scores. Intent is scored over all
the model's labels.
"""

from __future__ import annotations

import sys
from typing import Callable, Sequence

import numpy as np

from finetune.data import Example
from finetune.classification_metrics import classification_report, restrict_to_labels


def evaluate(predict_proba: Callable[[Sequence[str]], np.ndarray], model_labels: list[str],
             examples: list[Example], *, restrict: bool = True, chunk: int = 64, progress: bool = True) -> dict:
    from tqdm.auto import tqdm

    data_labels = {e.label for e in examples}
    unknown = sorted(data_labels - set(model_labels))
    if unknown:
        from core.errors import InputError

        raise InputError(f"the data has labels {unknown} the model does not know (model labels: {model_labels})")
    preds: list[str] = []
    bar = tqdm(total=len(examples), desc="evaluating", unit="text", disable=not progress, file=sys.stderr)
    for start in range(0, len(examples), chunk):
        batch = examples[start : start + chunk]
        proba = predict_proba([e.text for e in batch])
        preds.extend(restrict_to_labels(proba, model_labels, data_labels) if restrict
                     else [model_labels[i] for i in proba.argmax(axis=1)])
        bar.update(len(batch))
    bar.close()
    labels = [l for l in model_labels if l in data_labels or (not restrict and l in preds)]
    return classification_report([e.label for e in examples], preds, labels)


def format_report(report: dict) -> str:
    lines = [f"rows {report['n']}  accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  "
             f"macro-recall {report['macro_recall']:.4f}", "", f"{'label':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for label, m in report["per_class"].items():
        lines.append(f"{label:<16}{m['precision']:>10.4f}{m['recall']:>10.4f}{m['f1']:>10.4f}{m['support']:>9}")
    width = max(8, max(len(l) for l in report["labels"]) + 1)
    lines += ["", "confusion matrix (rows: true, columns: predicted)",
              " " * width + "".join(f"{l[:width - 1]:>{width}}" for l in report["labels"])]
    for label, row in zip(report["labels"], report["confusion_matrix"]):
        lines.append(f"{label[:width - 1]:<{width}}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)
