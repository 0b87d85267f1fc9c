"""The `supportbot` command line (API.md, "Command line").

Every command exits non-zero with a one-line reason on bad input; long commands show
progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

from bot.config import Settings, settings_with
from bot.errors import SupportbotError

log = logging.getLogger("supportbot")


def _settings(args: argparse.Namespace) -> Settings:
    return settings_with(
        home=getattr(args, "home", None), database_url=getattr(args, "database_url", None),
        host=getattr(args, "host", None), port=getattr(args, "port", None),
        sentiment_model=getattr(args, "sentiment_model", None), sentiment_model_zh=getattr(args, "sentiment_model_zh", None),
        threads=getattr(args, "threads", None), chat_model=getattr(args, "chat_model", None),
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", type=Path, help="data directory (SUPPORTBOT_HOME, default ./var)")
    p.add_argument("--database-url", help="SQLAlchemy URL (SUPPORTBOT_DATABASE_URL; default SQLite under home)")


def _models(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sentiment-model", help="model reference (SUPPORTBOT_SENTIMENT_MODEL)")
    p.add_argument("--sentiment-model-zh", help="model for Chinese texts; 'none' to use one model for all")
    p.add_argument("--threads", type=int, help="torch CPU threads (SUPPORTBOT_THREADS)")
    p.add_argument("--chat-model", help="chat model reference (SUPPORTBOT_CHAT_MODEL)")


# ---- serve ---------------------------------------------------------------------------
def cmd_serve(args) -> int:
    settings = _settings(args)
    from bot.runtime import Runtime, use_offline_hub_for_local_models

    use_offline_hub_for_local_models(settings)
    runtime = Runtime.start(settings)
    _refuse_open_public_bind(settings, runtime)
    runtime.load_models()
    import uvicorn

    from bot.api.app import create_app

    app = create_app(runtime, ui=settings.ui and not args.no_ui)
    print(f"supportbot serving on http://{settings.host}:{settings.port} (API under /v1, UI at /)", file=sys.stderr)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    return 0


def _refuse_open_public_bind(settings: Settings, runtime) -> None:
    import ipaddress

    from bot.api.auth import file_keys
    from storage.repositories import api_keys

    host = settings.host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return
    with runtime.sessions() as session:
        has_key = api_keys.any_active_api_key(session) or bool(file_keys(settings.api_keys_file))
    if not has_key:
        raise SupportbotError(f"refusing to listen on {host} while no API key exists: "
                              "run 'supportbot keys create NAME' first, or serve on 127.0.0.1")


# ---- sentiment -------------------------------------------------------------------------
def cmd_sentiment(args) -> int:
    settings = _settings(args)
    texts = list(args.texts)
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise SupportbotError(f"--file {path}: no such file")
        texts += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise SupportbotError("give texts to classify: supportbot sentiment TEXT... or --file F")
    from bot.guard import check_texts

    check_texts(texts, max_texts=10**9, max_chars=settings.max_text_chars)
    from bot.runtime import configure_torch, use_offline_hub_for_local_models

    use_offline_hub_for_local_models(settings)
    configure_torch(settings)
    from bot.sentiment import SentimentService

    service = SentimentService.load(settings.sentiment_model, settings.sentiment_model_zh, settings.model_cache_dir,
                                    batch_size=settings.inference_batch_size)
    results = service.classify(texts, explain=args.explain)
    if args.json:
        print(json.dumps({"model": service.version, "results": [r.public() for r in results]}, ensure_ascii=False, indent=2))
    else:
        for text, r in zip(texts, results):
            print(f"{r.label:<9} {r.score:.3f}  [{r.language}]  {text}")
    return 0


# ---- finetune / eval -----------------------------------------------------------------
def cmd_finetune(args) -> int:
    import importlib

    importlib.import_module(f"finetune.{args.kind}").main(args.rest)  # classifier, chat or merge
    return 0


def cmd_eval_chat(args) -> int:
    settings = _settings(args)
    from bot.runtime import configure_torch, use_offline_hub_for_local_models
    from finetune.perplexity import evaluate_chat

    use_offline_hub_for_local_models(settings)
    configure_torch(settings)
    model = _model_path(args.model, "chat", settings) if args.model else settings.chat_model
    report = evaluate_chat(model, args.data, settings.model_cache_dir, max_samples=args.max_samples or 0)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(f"model {model} on {args.data}: perplexity {report['perplexity']:.3f} (loss {report['eval_loss']:.4f}, "
              f"{report['n']} conversations, {report['eval_tokens']} assistant tokens)")
    return 0


def cmd_eval(args) -> int:
    settings = _settings(args)
    from bot.runtime import configure_torch, use_offline_hub_for_local_models
    from finetune.data import read_examples
    from finetune.evaluate import evaluate, format_report

    examples = read_examples(args.data)
    use_offline_hub_for_local_models(settings)
    configure_torch(settings)
    import numpy as np

    if args.model:
        from bot.classifier import TextClassifier

        clf = TextClassifier.load(_model_path(args.model, args.task, settings), settings.model_cache_dir,
                                  batch_size=settings.inference_batch_size)
        name, labels, predict = clf.name, clf.labels, clf.predict_proba
    else:
        if args.task != "sentiment":
            raise SupportbotError(f"--model is required for task {args.task!r}")
        from bot.sentiment import SENTIMENT_LABELS, SentimentService

        service = SentimentService.load(settings.sentiment_model, settings.sentiment_model_zh,
                                        settings.model_cache_dir, batch_size=settings.inference_batch_size)
        labels = list(SENTIMENT_LABELS)
        name = service.version

        def predict(texts):
            return np.array([[r.scores.get(l, 0.0) for l in labels] for r in service.classify(texts)])

    report = evaluate(predict, labels, examples, restrict=args.task == "sentiment")
    report.update(model=name, data=str(args.data), task=args.task)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(f"model {name} on {args.data}")
        print(format_report(report))
    return 0


def _model_path(model: str, task: str, settings: Settings) -> str:
    """A model version name from the database, else any model reference."""
    if Path(model).exists():
        return model
    try:
        from storage.db import make_engine, make_session_factory
        from storage.repositories import model_versions

        with make_session_factory(make_engine(settings.resolved_database_url))() as session:
            row = model_versions.get_model_version_by_name(session, task=task, name=model)
            if row is not None and row.path:
                return row.path
    except Exception as exc:  # noqa: BLE001 - fall back to treating it as a reference
        log.debug("model version lookup failed: %s", exc)
    return model


# ---- db / keys / models --------------------------------------------------------------
def cmd_db(args) -> int:
    settings = _settings(args)
    from storage.db import current_revision, upgrade

    url = settings.resolved_database_url
    if args.action == "upgrade":
        upgrade(url)
        print(f"database at revision {current_revision(url)}")
    return 0


def cmd_keys(args) -> int:
    settings = _settings(args)
    from bot.runtime import Runtime
    from storage.repositories import api_keys

    runtime = Runtime.start(settings)
    with runtime.sessions() as session:
        if args.action == "create":
            row, key = api_keys.create_api_key(session, name=args.name, scope="admin" if args.admin else "normal")
            session.commit()
            print(key)
            print(f"created {row.scope} key {row.name!r}; store it now, it is not shown again", file=sys.stderr)
        elif args.action == "revoke":
            if api_keys.revoke_api_key(session, name=args.name) is None:
                raise SupportbotError(f"no API key named {args.name!r}")
            session.commit()
            print(f"revoked {args.name!r}", file=sys.stderr)
        else:
            for row in api_keys.list_api_keys(session, include_revoked=True):
                state = "revoked" if row.revoked_at else "active"
                print(f"{row.name}\t{row.scope}\t{row.prefix}…\t{state}")
    return 0


def cmd_models(args) -> int:
    settings = _settings(args)
    from bot.model_refs import PACKAGED, SHIPPED, resolve

    if args.action == "prepare":
        for name in args.names or [settings.sentiment_model, settings.sentiment_model_zh, settings.chat_model,
                                   settings.embedding_model, settings.intent_model]:
            if name:
                resolved = resolve(name, settings.model_cache_dir)
                if resolved.adapter:
                    meta = json.loads((Path(resolved.path) / "supportbot.json").read_text(encoding="utf-8"))
                    resolve(meta["base"], settings.model_cache_dir)
                print(f"ready: {name}", file=sys.stderr)
        return 0
    for name, spec in PACKAGED.items():
        print(f"{name:<16} packaged  {spec.description}")
    for name, desc in SHIPPED.items():
        print(f"{name:<16} shipped   {desc}")
    return 0


# ---- chat --------------------------------------------------------------------------------
def cmd_chat(args) -> int:
    """The customer's side of a conversation in the terminal: one line is one turn."""
    settings = _settings(args)
    from bot.dialogue import TurnResult
    from bot.runtime import Runtime, use_offline_hub_for_local_models

    use_offline_hub_for_local_models(settings)
    runtime = Runtime.start(settings)
    print("loading models...", file=sys.stderr)
    runtime.load_models()
    dialogue = runtime.dialogue
    conversation_id = args.conversation or dialogue.create_conversation(channel="cli")
    print(f"conversation {conversation_id} (empty line or Ctrl-D to quit)", file=sys.stderr)
    lines = args.message or _read_turns()
    for text in lines:
        print("bot> ", end="", flush=True)
        for event in dialogue.stream_turn(conversation_id, text):
            if isinstance(event, TurnResult):
                print()
                if event.reply is None:
                    print("     (a human colleague holds this conversation; the bot stays silent)")
                sources = ", ".join(f"{s['title']} [{s['id']}]" for s in (event.reply.sources if event.reply else []))
                status = f"escalated: {event.escalation_reason}" if event.escalate else event.status
                print(f"     [sentiment {event.sentiment['label']} {event.sentiment['score']:.2f} | {status}"
                      + (f" | sources: {sources}" if sources else "") + "]", flush=True)
            else:
                print(event, end="", flush=True)
    runtime.close()
    return 0


def _read_turns():
    while True:
        try:
            text = input("you> ") if sys.stdin.isatty() else sys.stdin.readline()
        except EOFError:
            return
        if not text or not text.strip():
            return
        yield text.strip()


# ---- knowledge base -------------------------------------------------------------------------
def cmd_kb(args) -> int:
    settings = _settings(args)
    from bot.runtime import Runtime, use_offline_hub_for_local_models

    use_offline_hub_for_local_models(settings)
    runtime = Runtime.start(settings)
    if args.action == "import":
        from bot.knowledge import import_articles, read_article_files

        if not args.files:
            raise SupportbotError("kb import needs FILE... (.jsonl or .md, or directories of them)")
        articles = read_article_files(args.files)  # every file is checked before anything is written
        with runtime.sessions.begin() as session:
            n = import_articles(session, articles, runtime.embedder)
        print(f"imported {n} articles", file=sys.stderr)
    else:
        from storage.repositories.kb_articles import list_kb_articles

        with runtime.sessions() as session:
            for a in list_kb_articles(session, language=args.language):
                print(f"{a.id}\t{a.language}\t{a.title}")
    runtime.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="supportbot", description="Customer-service chat backend (see README.md).")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="serve the API under /v1 and the UI at /")
    _common(s), _models(s)
    s.add_argument("--host", help="bind address (default 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default 7860)")
    s.add_argument("--no-ui", action="store_true", help="API only")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("chat", help="chat with the bot in the terminal (one line per turn)")
    _common(s), _models(s)
    s.add_argument("--conversation", help="continue this conversation id")
    s.add_argument("-m", "--message", action="append", help="send this turn (repeatable) instead of reading stdin")
    s.set_defaults(func=cmd_chat)

    s = sub.add_parser("kb", help="knowledge base: import articles, list them")
    _common(s)
    s.add_argument("action", choices=["import", "list"])
    s.add_argument("files", nargs="*", help="import: .jsonl / .md files or directories")
    s.add_argument("--language", help="list: only this language")
    s.set_defaults(func=cmd_kb)

    s = sub.add_parser("sentiment", help="classify texts")
    _common(s), _models(s)
    s.add_argument("texts", nargs="*", help="texts to classify")
    s.add_argument("--file", help="a text file, one text per line")
    s.add_argument("--json", action="store_true", help="print the API's result objects")
    s.add_argument("--explain", action="store_true", help="add per-token weights")
    s.set_defaults(func=cmd_sentiment)

    s = sub.add_parser("finetune", help="fine-tune a model (LoRA / QLoRA)", add_help=False)
    s.add_argument("kind", choices=["classifier", "chat", "merge"])
    s.add_argument("rest", nargs=argparse.REMAINDER, help="recipe flags; see 'supportbot finetune classifier --help'")
    s.set_defaults(func=cmd_finetune)

    s = sub.add_parser("eval", help="evaluate a model on a labelled file (classifier) or chat JSONL (chat: perplexity)")
    _common(s), _models(s)
    s.add_argument("kind", choices=["classifier", "chat"])
    s.add_argument("--task", default="sentiment")
    s.add_argument("--data", required=True, help="CSV/TSV/JSONL with text,label; chat: chat JSONL")
    s.add_argument("--model", help="model version name, adapter directory or model reference; default: the served model")
    s.add_argument("--json", action="store_true")
    s.add_argument("--max-samples", type=int, help="chat: evaluate on a random subset of this many conversations")
    s.set_defaults(func=lambda a: (cmd_eval_chat if a.kind == "chat" else cmd_eval)(a))

    s = sub.add_parser("db", help="database schema")
    _common(s)
    s.add_argument("action", choices=["upgrade"])
    s.set_defaults(func=cmd_db)

    s = sub.add_parser("keys", help="API keys")
    _common(s)
    s.add_argument("action", choices=["create", "revoke", "list"])
    s.add_argument("name", nargs="?")
    s.add_argument("--admin", action="store_true", help="admin scope")
    s.set_defaults(func=cmd_keys)

    s = sub.add_parser("models", help="packaged and shipped models")
    _common(s)
    s.add_argument("action", choices=["list", "prepare"])
    s.add_argument("names", nargs="*", help="prepare: models to convert/cache (default: the configured ones)")
    s.set_defaults(func=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # optional CPU kernels it cannot find
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    if getattr(args, "action", None) in ("create", "revoke") and not args.name:
        parser.error(f"keys {args.action} needs a NAME")
    try:
        return args.func(args)
    except SupportbotError as exc:
        print(f"supportbot: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("supportbot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
