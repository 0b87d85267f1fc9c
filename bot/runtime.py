"""The running services one process shares: settings, database, models, knowledge base.

The HTTP app, the CLI and the UI all take a Runtime, so they talk to the same services.
Models load on first use (or all at once with `load_models`).

Which model serves a task is the active model version in the database (`supportbot
models activate`, a promoting `supportbot retrain`), else the configured default. A
running process checks for a newly active version every few seconds
(`model_versions_poll_s`), loads it in the background and swaps it in; requests in
flight finish on the model they started with, so none fails. A version that fails to
load is logged and the previous model keeps serving.
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

from core.config import Settings
from core.model_refs import PACKAGED, SHIPPED

log = logging.getLogger(__name__)


def use_offline_hub_for_local_models(settings: Settings) -> None:
    """Packaged/local models need no network: tell huggingface_hub before it is imported."""
    refs = [settings.sentiment_model, settings.sentiment_model_zh, settings.chat_model, settings.embedding_model,
            settings.embedding_model_multilingual, settings.intent_model, settings.intent_model_zh]
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
    _feedback: Any = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    # Model versions: the refs each loaded service was built from, and hot swapping.
    _loaded_refs: dict = field(default_factory=dict)  # service name -> tuple of refs
    _pinned: set = field(default_factory=set)  # services passed in by the caller: never swapped
    _versions_checked: float = 0.0
    _swapping: set = field(default_factory=set)
    _swap_failed: dict = field(default_factory=dict)  # (service, refs) -> monotonic time of the failure
    _erasures_lock: threading.Lock = field(default_factory=threading.Lock)

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
        if migrate:
            runtime.import_local_files()
        runtime.apply_erasures(claim=True)
        for name, service in services.items():
            if name not in ("sentiment", "intent", "embedder", "generator"):
                raise TypeError(f"unknown service {name!r}")
            if service is not None:
                setattr(runtime, f"_{name}", _NONE if service is False else service)
                runtime._pinned.add(name)
        return runtime

    def import_local_files(self) -> None:
        """Move what older versions kept in files on one host into the database, shared by
        every worker and host: the UI users file (once, into an empty table; the file is
        then renamed *.imported) and the API keys file (keys whose name is new)."""
        from sqlalchemy.exc import IntegrityError

        from storage.repositories import api_keys, ui_users

        users_file = self.settings.ui_users_path
        try:
            with self.sessions.begin() as session:
                n_users = ui_users.import_users_file(session, users_file)
                n_keys = api_keys.import_keys_file(session, self.settings.api_keys_file)
        except IntegrityError:  # another worker starting at the same moment imported them
            return
        if n_users:
            ui_users.retire_users_file(users_file)
            log.warning("imported %d UI users from %s into the database (the file is renamed %s.imported)",
                        n_users, users_file, users_file.name)
        if n_keys:
            log.warning("imported %d API keys from %s into the database; revoke them there with "
                        "'supportbot keys revoke NAME' (removing a line from the file no longer does)",
                        n_keys, self.settings.api_keys_file)

    @property
    def host_id(self) -> str:
        """This host's id (`<home>/host.json`), recorded on the export files it writes."""
        from storage.erasure import host_id

        return host_id(self.settings.home)

    def apply_erasures(self, *, claim: bool = False) -> int:
        """Remove from this host's export files the conversations erased on any host since
        it last looked (storage.erasure.apply_erasures). Runs at start and with the
        model-versions poll; a failure (database down, an export edited by hand) is
        logged and tried again next time."""
        from storage.erasure import apply_erasures

        if not self._erasures_lock.acquire(blocking=False):
            return 0  # another thread of this process is at it
        try:
            removed = apply_erasures(self.sessions, home=self.settings.home, claim=claim)
        except Exception as exc:  # noqa: BLE001 - must not stop serving; retried on the next poll
            log.error("could not apply erasures to this host's export files (tried again later): %s", exc)
            return 0
        finally:
            self._erasures_lock.release()
        if removed:
            log.info("erasures on other hosts: removed %d rows from this host's export files", removed)
        return removed

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

    # -- model versions ---------------------------------------------------------------

    def served_refs(self) -> dict[tuple[str, str], str | None]:
        """(task, route) -> the model reference that should serve it: the active
        version's path, else the configured default."""
        from bot.versions import configured_ref, configured_routes, local_path
        from storage.models import TASKS
        from storage.repositories.model_versions import active_model_versions

        s = self.settings
        refs = {(task, route): configured_ref(s, task, route) for task in TASKS for route in configured_routes(s, task)}
        try:
            with self.sessions() as session:
                for key, version in active_model_versions(session).items():
                    refs[key] = local_path(s, version.path) or version.name
        except Exception as exc:  # noqa: BLE001 - the database being down must not stop serving
            log.warning("cannot read the active model versions: %s", exc)
        return refs

    def _refs_for(self, name: str, refs: dict) -> tuple:
        if name == "sentiment":
            return refs[("sentiment", "default")], refs.get(("sentiment", "zh"))
        if name == "intent":
            return (refs[("intent", "default")],)
        return (refs[("chat", "default")],)

    def _build(self, name: str, refs: tuple):
        s = self.settings
        if name == "sentiment":
            from bot.sentiment import SentimentService

            return SentimentService.load(refs[0], refs[1], s.model_cache_dir, batch_size=s.inference_batch_size,
                                         quantize=s.sentiment_quantize, dtype=self.inference_dtype,
                                         batch_max_texts=s.sentiment_batch_max_texts,
                                         batch_wait_ms=s.sentiment_batch_wait_ms if s.sentiment_micro_batching else None)
        if name == "intent":
            from bot.intent import IntentService

            # Chinese turns: their own model (intent_model_zh; not a model-versions route yet);
            # intent_model 'none' turns intent off for every language.
            return refs[0] and IntentService.load(refs[0], s.model_cache_dir, model_zh=s.intent_model_zh,
                                                  batch_size=s.inference_batch_size, dtype=self.inference_dtype)
        return self._load_generator(refs[0])

    def _versioned(self, name: str):
        self.refresh_models()

        def load():
            refs = self._refs_for(name, self.served_refs())
            self._loaded_refs[name] = refs
            return self._build(name, refs)

        return self._service(name, load)

    def refresh_models(self, *, wait: bool = False) -> list[str]:
        """Swap in newly activated versions (checked at most every model_versions_poll_s;
        `wait`: check now and load in this thread). Returns the services being swapped."""
        now = time.monotonic()
        if not wait and now - self._versions_checked < self.settings.model_versions_poll_s:
            return []
        self._versions_checked = now
        self.apply_erasures()
        wanted = self.served_refs()
        started = []
        for name in ("sentiment", "intent", "generator"):
            if name in self._pinned or name not in self._loaded_refs or name in self._swapping:
                continue
            if name == "generator" and self.settings.chat_backend == "remote":
                continue
            refs = self._refs_for(name, wanted)
            failed_at = self._swap_failed.get((name, refs))
            if refs == self._loaded_refs[name] or (failed_at and now - failed_at < 60):
                continue
            self._swapping.add(name)
            started.append(name)
            if wait:
                self._swap(name, refs)
            else:
                threading.Thread(target=self._swap, args=(name, refs), name=f"swap-{name}", daemon=True).start()
        return started

    def _swap(self, name: str, refs: tuple) -> None:
        try:
            configure_torch(self.settings)
            log.info("loading the newly active %s model: %s", name, ", ".join(r for r in refs if r))
            service = self._build(name, refs)
            with self._lock:
                old = getattr(self, f"_{name}", None)
                setattr(self, f"_{name}", service if service is not None else _NONE)
                self._loaded_refs[name] = refs
                if self._dialogue is not None and self._dialogue is not _NONE:
                    attr = {"sentiment": "sentiment", "intent": "intent", "generator": "generator"}[name]
                    setattr(self._dialogue, attr, service)
            log.info("now serving %s: %s", name, ", ".join(r for r in refs if r))
            if hasattr(old, "close"):  # after the replies it is still writing
                closer = threading.Timer(self.settings.chat_timeout_s + 5, old.close)
                closer.daemon = True
                closer.start()
        except Exception as exc:  # noqa: BLE001 - keep serving the previous model
            self._swap_failed[(name, refs)] = time.monotonic()
            log.error("could not load the newly active %s model %s (the previous one keeps serving): %s",
                      name, refs, exc)
        finally:
            self._swapping.discard(name)

    # -- services ---------------------------------------------------------------------

    @property
    def inference_dtype(self) -> str:
        """What the classifiers and encoders compute in: settings.inference_dtype, with auto
        decided by the CPU (core.hardware)."""
        from core.hardware import resolve_inference_dtype

        return resolve_inference_dtype(self.settings.inference_dtype)

    @property
    def embedding_dtype(self) -> str:
        """What the retrieval encoders compute in: fp32 under auto (in bf16 one Chinese
        question of the 34 in scripts/data/answers/tune.jsonl lost its article: 93% -> 90%
        top-1; a query is one short text, so bf16 saves little there); bf16 when asked."""
        return "fp32" if self.settings.inference_dtype == "auto" else self.inference_dtype

    @property
    def sentiment(self):
        return self._versioned("sentiment")

    @property
    def intent(self):
        return self._versioned("intent")

    @property
    def redactor(self):
        from bot.redaction import Redactor

        return Redactor.from_setting(self.settings.pii_redact)

    @property
    def sealer(self):
        """Seals the originals kept before redaction; None unless the operator opted in."""
        from bot.sealing import Sealer

        s = self.settings
        return Sealer(s.pii_original_key.get_secret_value()) if s.pii_keep_original else None

    @property
    def feedback(self):
        from bot.feedback import FeedbackService

        if self._feedback is None:
            s = self.settings
            self._feedback = FeedbackService(self.sessions, self.redactor, sealer=self.sealer,
                                             max_text_chars=s.max_text_chars)
        return self._feedback

    @property
    def embedder(self):
        from bot.retrieval import Embedders, MiniLMEmbedder, reads

        def load():
            s = self.settings
            primary = MiniLMEmbedder.load(s.embedding_model, s.model_cache_dir, dtype=self.embedding_dtype)
            if s.embedding_model_multilingual is None or reads(primary, "zh"):
                return Embedders(primary)
            return Embedders(primary, MiniLMEmbedder.load(s.embedding_model_multilingual, s.model_cache_dir,
                                                        dtype=self.embedding_dtype))

        return self._service("embedder", load)

    @property
    def generator(self):
        return self._versioned("generator")

    def _load_generator(self, ref: str):
        from bot.generation import LocalGenerator, RemoteGenerator

        s = self.settings
        if s.chat_backend == "remote":
            return RemoteGenerator(s.chat_remote_url, s.chat_remote_model, api_key=s.chat_remote_key,
                                   context_tokens=s.chat_context_tokens, timeout_s=s.chat_timeout_s)
        from bot.llama_cpp_engine import LlamaCppGenerator, choose_engine

        engine, why = choose_engine(s.chat_engine, ref)
        log.info("chat model %s on %s (%s)", ref, engine, why)
        if engine == "llama_cpp":
            return LlamaCppGenerator.load(ref, s.model_cache_dir, context_tokens=s.chat_context_tokens,
                                          slots=s.chat_batch_requests)
        return LocalGenerator.load(ref, s.model_cache_dir, context_tokens=s.chat_context_tokens,
                                   batch_requests=s.chat_batch_requests)

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
                    if session.dirty:  # vectors made again by this encoder: stored for the next start
                        session.commit()
                        key = tuple(session.execute(sa.select(sa.func.count(KbArticle.id),
                                                              sa.func.max(KbArticle.updated_at))).one())
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
                                    max_text_chars=s.max_text_chars, redactor=self.redactor,
                                    sealer=self.sealer,
                                    params=GenerationParams(max_tokens=s.chat_max_tokens, timeout_s=s.chat_timeout_s))
            return DialogueEngine(sessions=self.sessions, sentiment=self.sentiment, intent=self.intent,
                                  knowledge=self.knowledge, generator=self.generator, config=config)

        self.refresh_models()
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
        if hasattr(self._generator, "close"):
            self._generator.close()
        self.engine.dispose()


class _Off:
    def __repr__(self) -> str:
        return "off"


_NONE = _Off()  # a service configured off (e.g. SUPPORTBOT_INTENT_MODEL=none)
