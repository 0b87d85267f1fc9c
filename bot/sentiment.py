"""Sentiment of customer texts: negative / neutral / positive, with the detected language.

Texts are routed by language: Chinese (and Japanese, which shares the script) go to the
Chinese model when one is configured, everything else to the default model. Each model's
label set is read from the model itself.

A service loaded for a server (`batch_wait_ms` given) runs concurrent callers' texts
through each model together (bot.batching.MicroBatcher, one per model, so English texts
never queue behind a Chinese batch). Requests of `batch_max_texts` texts or more are
batches already: they run in the caller's thread, so they never hold up short ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from bot.batching import MicroBatcher
from bot.classifier import Classifier, TextClassifier
from bot.language import detect_language

SENTIMENT_LABELS = ("negative", "neutral", "positive")
# The languages each extra route serves; the default model takes every other language.
ROUTE_LANGUAGES: dict[str, tuple[str, ...]] = {"zh": ("zh", "ja")}  # Japanese shares the script
_ALIASES = {"neg": "negative", "pos": "positive", "neu": "neutral", "0": "negative", "1": "positive"}


def normalise_label(label: str) -> str:
    label = label.strip().lower()
    return _ALIASES.get(label, label)


@dataclass
class SentimentResult:
    label: str
    score: float
    scores: dict[str, float]
    language: str
    explanation: list[dict] | None = None

    def public(self) -> dict:
        out = {"label": self.label, "score": self.score, "scores": self.scores, "language": self.language}
        if self.explanation is not None:
            out["explanation"] = self.explanation
        return out


@dataclass
class SentimentService:
    default: Classifier
    routes: dict[str, Classifier] = field(default_factory=dict)  # language -> classifier
    batchers: dict[int, MicroBatcher] = field(default_factory=dict, repr=False)  # id(classifier) -> its batcher

    @classmethod
    def load(cls, model: str, model_zh: str | None, cache_dir: Path, *, batch_size: int = 32,
             quantize: str = "none", dtype: str = "fp32", batch_wait_ms: float | None = None,
             batch_max_texts: int = 64, batch_max_queue: int = 256) -> "SentimentService":
        """`quantize`: see bot.quantization; `batch_wait_ms`: micro-batch concurrent calls
        (None: classify each call on its own, as the CLI does)."""
        default = TextClassifier.load(model, cache_dir, batch_size=batch_size, quantize=quantize, dtype=dtype)
        routes = {}
        if model_zh and model_zh != model:
            zh = TextClassifier.load(model_zh, cache_dir, batch_size=batch_size, quantize=quantize, dtype=dtype)
            routes = {language: zh for language in ROUTE_LANGUAGES["zh"]}
        service = cls(default, routes)
        if batch_wait_ms is not None:
            service.with_batching(max_wait_ms=batch_wait_ms, max_items=batch_max_texts, max_queue=batch_max_queue)
        return service

    def with_batching(self, **options) -> "SentimentService":
        """Run the texts of concurrent `classify` calls through each model together
        (MicroBatcher options)."""
        for clf in {id(c): c for c in [self.default, *self.routes.values()]}.values():
            self.batchers[id(clf)] = MicroBatcher(clf.predict_proba, name=f"batcher-{clf.name}", **options)
        return self

    def _predict_proba(self, clf: Classifier, texts: list[str]) -> np.ndarray:
        batcher = self.batchers.get(id(clf))
        if batcher is None or len(texts) >= batcher.max_items:
            return clf.predict_proba(texts)
        return np.asarray(batcher.submit(texts))

    @property
    def version(self) -> str:
        names = [self.default.name] + sorted({c.name for c in self.routes.values()})
        return "+".join(dict.fromkeys(names))

    def models(self) -> dict[str, str]:
        return {"default": self.default.name, **{lang: c.name for lang, c in self.routes.items()}}

    def _classifier_for(self, language: str) -> Classifier:
        return self.routes.get(language, self.default)

    def classify(self, texts: Sequence[str], *, explain: bool = False) -> list[SentimentResult]:
        languages = [detect_language(t) for t in texts]
        results: list[SentimentResult | None] = [None] * len(texts)
        groups: dict[int, list[int]] = {}
        classifiers: dict[int, Classifier] = {}
        for i, lang in enumerate(languages):
            clf = self._classifier_for(lang)
            groups.setdefault(id(clf), []).append(i)
            classifiers[id(clf)] = clf
        for key, idx in groups.items():
            clf = classifiers[key]
            proba = self._predict_proba(clf, [texts[i] for i in idx])
            labels = [normalise_label(l) for l in clf.labels]
            for row, i in zip(proba, idx):
                results[i] = _result(labels, row, languages[i])
                if explain:
                    results[i].explanation = explain_text(clf, texts[i], labels.index(results[i].label), languages[i])
        return results  # type: ignore[return-value]


def _result(labels: list[str], row: np.ndarray, language: str) -> SentimentResult:
    scores = {label: 0.0 for label in SENTIMENT_LABELS if set(labels) <= set(SENTIMENT_LABELS)}
    scores.update({label: round(float(p), 6) for label, p in zip(labels, row)})
    best = int(np.argmax(row))
    return SentimentResult(labels[best], round(float(row[best]), 6), scores, language)


_UNIT = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W_]+(?:'[^\W_]+)?|[^\w\s]", re.UNICODE)
MAX_EXPLAIN_UNITS = 64


def explain_text(clf: Classifier, text: str, label_index: int, language: str) -> list[dict]:
    """Occlusion: a unit's weight is how much the label's probability drops without it.

    Units are words (characters for Chinese/Japanese). Positive weights pushed the text
    towards its label, negative ones away from it. Only the first 64 units are scored.
    """
    units = [m for m in _UNIT.finditer(text)][:MAX_EXPLAIN_UNITS]
    if not units:
        return []
    variants = [text[: m.start()] + text[m.end():] for m in units]
    proba = clf.predict_proba([text] + variants)
    base = proba[0, label_index]
    return [{"token": m.group(), "weight": round(float(base - p[label_index]), 6)} for m, p in zip(units, proba[1:])]
