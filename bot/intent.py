"""Intent of a customer turn (cancel_order, track_order, ...): label + score.

The label set is whatever the intent model was trained on (the shipped default: Bitext's
27 customer-service intents). Texts are routed by language, as sentiment is: English to
the default model (`intent_model`, English-only), Chinese to the Chinese model when one
is configured (`intent_model_zh`, the shipped `intent-zh-me5`: the same 27 intents on
multilingual-e5-small). A language no model covers gets no intent rather than a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from bot.classifier import Classifier, TextClassifier
from bot.language import detect_language


@dataclass
class IntentResult:
    label: str
    score: float

    def public(self) -> dict:
        return {"label": self.label, "score": self.score}


# The languages each extra route serves (the default model serves `languages`).
ROUTE_LANGUAGES: dict[str, tuple[str, ...]] = {"zh": ("zh",)}


@dataclass
class IntentService:
    classifier: Classifier | None
    languages: tuple[str, ...] = ("en",)
    routes: dict[str, Classifier] = field(default_factory=dict)  # language -> classifier

    @classmethod
    def load(cls, model: str | None, cache_dir: Path, *, model_zh: str | None = None,
             batch_size: int = 32, dtype: str = "fp32") -> "IntentService":
        default = TextClassifier.load(model, cache_dir, batch_size=batch_size, dtype=dtype) if model else None
        routes = {}
        if model_zh:
            zh = TextClassifier.load(model_zh, cache_dir, batch_size=batch_size, dtype=dtype)
            routes = {language: zh for language in ROUTE_LANGUAGES["zh"]}
        return cls(default, routes=routes)

    @property
    def version(self) -> str:
        """The default model's name, then each route's (`intent-bitext-v1, zh: intent-zh-me5-v1`)."""
        names = [self.classifier.name] if self.classifier is not None else []
        return ", ".join(names + [f"{lang}: {c.name}" for lang, c in self.routes.items()])

    def _classifier_for(self, language: str) -> Classifier | None:
        if language in self.routes:
            return self.routes[language]
        return self.classifier if language in self.languages else None

    def classify(self, texts: Sequence[str]) -> list[IntentResult | None]:
        """One result per text, None where the text's language is not covered."""
        groups: dict[int, tuple[Classifier, list[int]]] = {}
        for i, text in enumerate(texts):
            clf = self._classifier_for(detect_language(text))
            if clf is not None:
                groups.setdefault(id(clf), (clf, []))[1].append(i)
        results: list[IntentResult | None] = [None] * len(texts)
        for clf, idx in groups.values():
            proba = clf.predict_proba([texts[i] for i in idx])
            for i, row in zip(idx, proba):
                best = int(np.argmax(row))
                results[i] = IntentResult(clf.labels[best], round(float(row[best]), 6))
        return results
