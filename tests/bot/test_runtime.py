from __future__ import annotations

import os

import numpy as np

from core.config import settings_with
from bot.runtime import Runtime, use_offline_hub_for_local_models
from storage.db import current_revision, head_revision


def test_start_migrates_the_database_under_home(tmp_path):
    runtime = Runtime.start(settings_with(home=tmp_path / "home"))
    try:
        assert current_revision(f"sqlite:///{tmp_path / 'home' / 'supportbot.db'}") == head_revision()
        assert runtime.models_status() == {"sentiment": "not loaded", "intent": "not loaded", "chat": "not loaded",
                                           "embedding": "not loaded"}
    finally:
        runtime.close()


def test_sentiment_is_loaded_on_first_use_from_settings(tmp_path, tiny_classifier_dir):
    settings = settings_with(home=tmp_path, sentiment_model=str(tiny_classifier_dir), sentiment_model_zh="none",
                             inference_batch_size=2)
    runtime = Runtime.start(settings)
    try:
        service = runtime.sentiment
        assert runtime.sentiment is service  # loaded once
        assert runtime.models_status()["sentiment"] == {"default": str(tiny_classifier_dir)}
        assert service.default.batch_size == 2
        results = service.classify(["good", "服务太差了"])
        assert [r.language for r in results] == ["en", "zh"]
        assert np.isclose(sum(results[1].scores.values()), 1.0, atol=1e-5)
    finally:
        runtime.close()


def test_offline_hub_for_local_models(monkeypatch, tmp_path, tiny_classifier_dir):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    use_offline_hub_for_local_models(settings_with(sentiment_model="org/remote", sentiment_model_zh="none"))
    assert "HF_HUB_OFFLINE" not in os.environ  # a hub id may need the network
    use_offline_hub_for_local_models(settings_with(sentiment_model=str(tiny_classifier_dir), sentiment_model_zh="none"))
    assert os.environ["HF_HUB_OFFLINE"] == "1"
