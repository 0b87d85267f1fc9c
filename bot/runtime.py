"""The running services one process shares: settings, database, models.

The HTTP app, the CLI and the UI all take a Runtime, so they talk to the same services.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from bot.config import Settings
from bot.model_refs import PACKAGED, SHIPPED
from bot.sentiment import SentimentService

log = logging.getLogger(__name__)


def use_offline_hub_for_local_models(settings: Settings) -> None:
    """Packaged/local models need no network: tell huggingface_hub before it is imported."""
    refs = [settings.sentiment_model, settings.sentiment_model_zh, settings.chat_model, settings.embedding_model]
    if all(r is None or r in PACKAGED or r in SHIPPED or os.path.isdir(r) for r in refs):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def configure_torch(settings: Settings) -> None:
    import torch

    if settings.threads:
        torch.set_num_threads(settings.threads)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker
    _sentiment: SentimentService | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, settings: Settings, *, migrate: bool = True, sentiment: SentimentService | None = None) -> "Runtime":
        from storage.db import make_engine, make_session_factory, upgrade

        settings.home.mkdir(parents=True, exist_ok=True)
        url = settings.resolved_database_url
        if migrate:
            upgrade(url)
        engine = make_engine(url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        return cls(settings, engine, make_session_factory(engine), sentiment)

    @property
    def sentiment(self) -> SentimentService:
        """Loaded on first use (or eagerly by `load_models`)."""
        if self._sentiment is None:
            with self._lock:
                if self._sentiment is None:
                    configure_torch(self.settings)
                    s = self.settings
                    self._sentiment = SentimentService.load(
                        s.sentiment_model, s.sentiment_model_zh, s.model_cache_dir, batch_size=s.inference_batch_size
                    )
        return self._sentiment

    def load_models(self) -> None:
        log.info("loading sentiment models...")
        log.info("sentiment models ready: %s", self.sentiment.models())

    def models_status(self) -> dict:
        if self._sentiment is None:
            return {"sentiment": "not loaded"}
        return {"sentiment": self._sentiment.models()}

    def close(self) -> None:
        self.engine.dispose()
