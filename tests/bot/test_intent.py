from __future__ import annotations

from typing import Sequence

import numpy as np

from bot.intent import IntentService


class TableClassifier:
    """Scores by keyword: 'cancel' -> cancel_order, 'track'/'where' -> track_order, else other."""

    name = "intent-test"
    labels = ["cancel_order", "other", "track_order"]

    def __init__(self):
        self.seen: list[str] = []

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        self.seen += list(texts)
        rows = []
        for t in texts:
            low = t.lower()
            z = np.array([3.0 * ("cancel" in low), 1.0, 3.0 * ("track" in low or "where" in low)])
            rows.append(np.exp(z) / np.exp(z).sum())
        return np.array(rows, dtype=np.float32)


def test_intents_in_input_order_with_scores():
    service = IntentService(TableClassifier())
    results = service.classify(["Please cancel my order", "Where is my parcel?", "hello"])
    assert [r.label for r in results] == ["cancel_order", "track_order", "other"]
    assert all(0 < r.score <= 1 for r in results)
    assert results[0].score > results[2].score
    assert service.version == "intent-test"


def test_languages_not_covered_get_no_intent_and_are_not_scored():
    clf = TableClassifier()
    results = IntentService(clf).classify(["我要取消订单", "cancel it"])
    assert results[0] is None and results[1].label == "cancel_order"
    assert clf.seen == ["cancel it"]
