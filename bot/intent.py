"""Intent of a customer turn (cancel_order, track_order, ...): label + score.

The label set is whatever the intent model was trained on (the shipped default: Bitext's
27 customer-service intents). Intent models are English-only for now: Chinese texts
get no intent rather than a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class IntentService:
    classifier: Classifier
    languages: tuple[str, ...] = ("en",)

    @classmethod
    def load(cls, model: str, cache_dir: Path, *, batch_size: int = 32) -> "IntentService":
        return cls(TextClassifier.load(model, cache_dir, batch_size=batch_size))

    @property
    def version(self) -> str:
        return self.classifier.name

    def classify(self, texts: Sequence[str]) -> list[IntentResult | None]:
        """One result per text, None where the text's language is not covered."""
        covered = [i for i, t in enumerate(texts) if detect_language(t) in self.languages]
        results: list[IntentResult | None] = [None] * len(texts)
        if covered:
            proba = self.classifier.predict_proba([texts[i] for i in covered])
            for i, row in zip(covered, proba):
                best = int(np.argmax(row))
                results[i] = IntentResult(self.classifier.labels[best], round(float(row[best]), 6))
        return results
