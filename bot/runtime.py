"""The running services one process shares: settings, database, models, knowledge base.

The HTTP app, the CLI and the UI all take a Runtime, so they talk to the same services.
Models load on first use (or all at once with `load_models`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from bot.config import Settings
from bot.model_refs import PACKAGED, SHIPPED

log = logging.getLogger(__name__)


def use_offline_hub_for_local_models(settings: Settings) -> None:
    """Packaged/local models need no network: tell huggingface_hub before it is imported."""
    refs = [settings.sentiment_model, settings.sentiment_model_zh, settings.chat_model, settings.embedding_model,
            settings.intent_model]
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
    # Services: loaded lazily by the properties below; tests pass their own.
    _sentiment: Any = None
    _intent: Any = None
    _embedder: Any = None
    _generator: Any = None
    _dialogue: Any = None
    _index: Any = None
    _index_key: Any = None
    _index_checked: float = 0.0
    _lock: threading.RLock = field(default_factory=threading.RLock)

    @classmethod
    def start(cls, settings: Settings, *, migrate: bool = True, **services) -> "Runtime":
        """Open the database (running migrations). `services` (sentiment=, intent=,
        embedder=, generator=) replace the configured models, e.g. tiny ones in tests;
        None leaves the configured one (loaded on first use), False turns it off."""
        from storage.db import make_engine, make_session_factory, upgrade

        settings.home.mkdir(parents=True, exist_ok=True)
        url = settings.resolved_database_url
        if migrate:
            upgrade(url)
        engine = make_engine(url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        runtime = cls(settings, engine, make_session_factory(engine))
        for name, service in services.items():
            if name not in ("sentiment", "intent", "embedder", "generator"):
                raise TypeError(f"unknown service {name!r}")
            if service is not None:
                setattr(runtime, f"_{name}", _NONE if service is False else service)
        return runtime

    def _service(self, name: str, load: Callable[[], Any]):
        value = getattr(self, f"_{name}")
        if value is None:
            with self._lock:
                value = getattr(self, f"_{name}")
                if value is None:
                    configure_torch(self.settings)
                    value = load()
                    setattr(self, f"_{name}", value if value is not None else _NONE)
        return None if value is _NONE else value

    @property
    def sentiment(self):
        from bot.sentiment import SentimentService

        s = self.settings
        return self._service("sentiment", lambda: SentimentService.load(
            s.sentiment_model, s.sentiment_model_zh, s.model_cache_dir, batch_size=s.inference_batch_size))

    @property
    def intent(self):
        from bot.intent import IntentService

        s = self.settings
        return self._service("intent", lambda: s.intent_model and IntentService.load(
            s.intent_model, s.model_cache_dir, batch_size=s.inference_batch_size))

    @property
    def embedder(self):
        from bot.retrieval import MiniLMEmbedder

        return self._service("embedder", lambda: MiniLMEmbedder.load(self.settings.embedding_model,
                                                                     self.settings.model_cache_dir))

    @property
    def generator(self):
        return self._service("generator", self._load_generator)

    def _load_generator(self):
        from bot.generation import LocalGenerator, RemoteGenerator

        s = self.settings
        if s.chat_backend == "remote":
            return RemoteGenerator(s.chat_remote_url, s.chat_remote_model, api_key=s.chat_remote_key,
                                   context_tokens=s.chat_context_tokens, timeout_s=s.chat_timeout_s)
        return LocalGenerator.load(s.chat_model, s.model_cache_dir, context_tokens=s.chat_context_tokens)

    def knowledge(self):
        """The retrieval index, rebuilt when articles were imported or edited (checked at
        most every 2 seconds), so `supportbot kb import` reaches a running server."""
        import sqlalchemy as sa

        from bot.retrieval import build_index
        from storage.models import KbArticle

        now = time.monotonic()
        if self._index is not None and now - self._index_checked < 2.0:
            return self._index
        with self._lock:
            with self.sessions() as session:
                key = session.execute(sa.select(sa.func.count(KbArticle.id), sa.func.max(KbArticle.updated_at))).one()
                key = tuple(key)
                if self._index is None or key != self._index_key:
                    self._index = build_index(session, self.embedder)
                    self._index_key = key
                    log.info("knowledge base: %d articles indexed", len(self._index))
            self._index_checked = now
        return self._index

    def import_demo_kb_if_empty(self) -> int:
        from bot.knowledge import DEMO_KB_DIR, import_articles, read_article_files
        from storage.repositories.kb_articles import list_kb_articles

        with self.sessions.begin() as session:
            if list_kb_articles(session, limit=1) or not DEMO_KB_DIR.is_dir():
                return 0
            articles = read_article_files([DEMO_KB_DIR])
            n = import_articles(session, articles, self.embedder)
        log.info("imported the demo knowledge base: %d articles", n)
        return n

    @property
    def dialogue(self):
        from bot.dialogue import DialogueConfig, DialogueEngine
        from bot.generation import GenerationParams

        def build():
            s = self.settings
            config = DialogueConfig(answer_threshold=s.answer_threshold, generate_languages=s.generate_languages,
                                    max_text_chars=s.max_text_chars,
                                    params=GenerationParams(max_tokens=s.chat_max_tokens, timeout_s=s.chat_timeout_s))
            return DialogueEngine(sessions=self.sessions, sentiment=self.sentiment, intent=self.intent,
                                  knowledge=self.knowledge, generator=self.generator, config=config)

        return self._service("dialogue", build)

    def load_models(self) -> None:
        log.info("loading models...")
        self.sentiment
        self.intent
        if self.settings.demo_kb:
            self.import_demo_kb_if_empty()
        self.knowledge()
        self.generator
        log.info("models ready: %s", self.models_status())

    def models_status(self) -> dict:
        def state(value, describe):
            return "not loaded" if value is None else ("off" if value is _NONE else describe(value))

        return {
            "sentiment": state(self._sentiment, lambda v: v.models()),
            "intent": state(self._intent, lambda v: v.version),
            "chat": state(self._generator, lambda v: v.name),
            "embedding": state(self._embedder, lambda v: v.name),
        }

    def close(self) -> None:
        self.engine.dispose()


class _Off:
    def __repr__(self) -> str:
        return "off"


_NONE = _Off()  # a service configured off (e.g. SUPPORTBOT_INTENT_MODEL=none)
