from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest

from bot.intent import IntentService
from bot.knowledge import import_articles
from bot.runtime import Runtime
from bot.sentiment import SentimentService
from core.config import settings_with
from fixtures import tiny
from fixtures.dialogue import ARTICLES
from fixtures.fakes import HashEmbedder, KeywordClassifier, ScriptedGenerator
from storage.models import Message


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


def test_chinese_texts_go_to_the_chinese_route_and_english_to_the_default():
    en, zh = TableClassifier(), TableClassifier()
    zh.name = "intent-zh-test"
    service = IntentService(en, routes={"zh": zh})
    results = service.classify(["我要取消订单", "cancel it", "キャンセルしたい"])
    assert results[0] is not None and results[1].label == "cancel_order" and results[2] is None
    assert zh.seen == ["我要取消订单"] and en.seen == ["cancel it"]
    assert service.version == "intent-test, zh: intent-zh-test"


ZH_LABELS = ["cancel_order", "get_refund", "track_order"]


@pytest.fixture(scope="module")
def tiny_intent_dirs(tmp_path_factory):
    """Two tiny random classifiers: English (negative/neutral/positive labels) and Chinese
    (intent labels), so each result shows which route it came from."""
    root = tmp_path_factory.mktemp("tiny-intent")
    return (tiny.build_bert_classifier(root / "en", seed=0),
            tiny.build_bert_classifier(root / "zh", seed=1, labels=ZH_LABELS))


def start(home, **settings):
    runtime = Runtime.start(
        settings_with(home=home, demo_kb=False, answer_threshold=0.2, threads=1, **settings),
        sentiment=SentimentService(KeywordClassifier("kw-en"), {"zh": KeywordClassifier("kw-zh")}),
        embedder=HashEmbedder(), generator=ScriptedGenerator())
    with runtime.sessions.begin() as session:
        import_articles(session, list(ARTICLES), runtime.embedder)
    return runtime


def test_a_chinese_turn_gets_an_intent_from_the_chinese_route(tmp_path, tiny_intent_dirs):
    en_dir, zh_dir = tiny_intent_dirs
    runtime = start(tmp_path, intent_model=str(en_dir), intent_model_zh=str(zh_dir))
    try:
        d = runtime.dialogue
        cid = d.create_conversation()
        zh_turn = d.turn(cid, "我要取消订单，怎么退货？")
        assert zh_turn.language == "zh"
        assert zh_turn.intent is not None and zh_turn.intent["label"] in ZH_LABELS
        en_turn = d.turn(d.create_conversation(), "where is my order")
        assert en_turn.intent["label"] in tiny.SENTIMENT_LABELS  # the English (default) model
        with runtime.sessions() as s:
            stored = s.query(Message).filter_by(conversation_id=cid, role="customer").one()
            assert stored.intent_label == zh_turn.intent["label"]
        assert runtime.models_status()["intent"] == f"{en_dir}, zh: {zh_dir}"
    finally:
        runtime.close()


def test_chinese_intent_off_with_none(tmp_path, tiny_intent_dirs):
    en_dir, _ = tiny_intent_dirs
    runtime = start(tmp_path, intent_model=str(en_dir), intent_model_zh="none")
    try:
        d = runtime.dialogue
        assert d.turn(d.create_conversation(), "我要取消订单").intent is None
        assert d.turn(d.create_conversation(), "cancel my order").intent is not None
    finally:
        runtime.close()
