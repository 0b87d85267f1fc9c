"""The `supportbot` command line (API.md, "Command line").

Every command exits non-zero with a one-line reason on bad input; long commands show
progress on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import warnings
from pathlib import Path

from core.config import Settings, settings_with
from core.errors import SupportbotError

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
    from app import startup
    from bot import logs
    from app.server import refuse_open_public_bind
    from bot.runtime import Runtime, use_offline_hub_for_local_models

    logs.configure(settings.log_format, logging.DEBUG if args.verbose else getattr(logging, settings.log_level))
    if args.workers is not None and args.workers < 1:
        raise SupportbotError(f"--workers {args.workers}: give 1 or more")
    workers = args.workers or settings.workers
    if workers > 1:
        return _serve_workers(args, settings, workers)

    use_offline_hub_for_local_models(settings)
    runtime = Runtime.start(settings)
    refuse_open_public_bind(settings, runtime)
    startup.load_models(runtime)  # logs how long the start took
    import uvicorn

    from app.server import create_app

    app = create_app(runtime, ui=settings.ui and not args.no_ui)
    print(f"supportbot serving on http://{settings.host}:{settings.port} (API under /v1, UI at /)", file=sys.stderr)
    # json: uvicorn's own lines (access log too) go through the root handler, as JSON
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                **({"log_config": None} if settings.log_format == "json" else {}))
    return 0


def _serve_workers(args, settings: Settings, workers: int) -> int:
    """N uvicorn worker processes, each building app.server:app from the environment:
    the flags given here are passed on as SUPPORTBOT_* variables. The schema is upgraded
    (under the migration lock) and the bind checked once here, before they start."""
    import os

    import uvicorn

    from app.server import refuse_open_public_bind
    from bot.runtime import Runtime

    flags = {"home": args.home, "database_url": args.database_url, "host": args.host, "port": args.port,
             "sentiment_model": args.sentiment_model, "sentiment_model_zh": args.sentiment_model_zh,
             "threads": args.threads, "chat_model": args.chat_model}
    for name, value in flags.items():
        if value is not None:
            os.environ[f"SUPPORTBOT_{name.upper()}"] = str(value)
    if settings.threads is None and args.threads is None:  # the cores shared out, not N x all of them
        os.environ["SUPPORTBOT_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    if settings.ui and not args.no_ui:
        print("supportbot: the UI keeps its sessions in one process: with --workers the API alone is served; "
              "serve the UI from a one-worker `supportbot serve` on another port", file=sys.stderr)
    os.environ["SUPPORTBOT_UI"] = "false"
    runtime = Runtime.start(settings)
    try:
        refuse_open_public_bind(settings, runtime)
    finally:
        runtime.close()
    print(f"supportbot serving on http://{settings.host}:{settings.port} with {workers} workers (API under /v1)",
          file=sys.stderr)
    uvicorn.run("app.server:app", host=settings.host, port=settings.port, workers=workers,
                log_level=settings.log_level.lower(), **({"log_config": None} if settings.log_format == "json" else {}))
    return 0


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

    clean = check_texts(texts, max_texts=10**9, max_chars=settings.max_text_chars)
    from bot.runtime import configure_torch, use_offline_hub_for_local_models

    use_offline_hub_for_local_models(settings)
    configure_torch(settings)
    from bot.sentiment import SentimentService

    service = SentimentService.load(settings.sentiment_model, settings.sentiment_model_zh, settings.model_cache_dir,
                                    batch_size=settings.inference_batch_size)
    results = service.classify(clean, explain=args.explain)
    if args.json:
        print(json.dumps({"model": service.version, "results": [r.public() for r in results]}, ensure_ascii=False, indent=2))
    else:
        for text, r in zip(texts, results):
            print(f"{r.label:<9} {r.score:.3f}  [{r.language}]  {text}")
    return 0


# ---- finetune / eval -----------------------------------------------------------------
RECIPES = {"classifier": "finetune.classifier_recipe", "chat": "finetune.chat_recipe", "merge": "finetune.merge"}


def cmd_finetune(args) -> int:
    import importlib

    importlib.import_module(RECIPES[args.kind]).main(args.rest)
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

    from core.hardware import resolve_inference_dtype

    dtype = resolve_inference_dtype(settings.inference_dtype)
    if args.model:
        from bot.classifier import TextClassifier

        clf = TextClassifier.load(_model_path(args.model, args.task, settings), settings.model_cache_dir,
                                  batch_size=settings.inference_batch_size, dtype=dtype)
        name, labels, predict = clf.name, clf.labels, clf.predict_proba
    else:
        if args.task != "sentiment":
            raise SupportbotError(f"--model is required for task {args.task!r}")
        from bot.sentiment import SENTIMENT_LABELS, SentimentService

        service = SentimentService.load(settings.sentiment_model, settings.sentiment_model_zh,
                                        settings.model_cache_dir, batch_size=settings.inference_batch_size,
                                        dtype=dtype)
        labels = list(SENTIMENT_LABELS)
        name = service.version

        def predict(texts):
            return np.array([[r.scores.get(l, 0.0) for l in labels] for r in service.classify(texts)])

    report = evaluate(predict, labels, examples, restrict=args.task == "sentiment")
    report.update(model=name, data=str(args.data), task=args.task, dtype=dtype)
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
    # export
    if not args.what or not args.out:
        raise SupportbotError("db export needs --what sentiment|intent|chat and --out FILE")
    from datetime import datetime, timedelta, UTC

    from bot.runtime import Runtime
    from bot.sentiment import ROUTE_LANGUAGES
    from storage.export import export_training_set

    since = datetime.now(UTC) - timedelta(days=args.since_days) if args.since_days else None
    runtime = Runtime.start(settings)
    with runtime.sessions.begin() as session:
        record = export_training_set(session, what=args.what, path=args.out, since=since, route=args.route,
                                     route_languages=ROUTE_LANGUAGES,
                                     confirmed_min_score=settings.retrain_confirmed_min_score,
                                     host=runtime.host_id)
        print(f"exported {record.rows} rows to {record.path} (sha256 {record.sha256[:16]}…, export {record.id})",
              file=sys.stderr)
    return 0


def cmd_conversations(args) -> int:
    """Erase one customer's conversation, or everything idle for more than N days."""
    settings = _settings(args)
    from datetime import datetime, timedelta, UTC

    from bot.runtime import Runtime
    from storage import erasure

    runtime = Runtime.start(settings)
    with runtime.sessions.begin() as session:
        if args.action == "erase":
            if not args.id:
                raise SupportbotError("conversations erase needs the conversation ID")
            if not erasure.erase_conversation(session, conversation_id=args.id, host=runtime.host_id):
                raise SupportbotError(f"no conversation {args.id!r}")
            print(f"erased conversation {args.id} (messages, feedback, rows in exports)", file=sys.stderr)
        else:
            if args.older_than is None:
                raise SupportbotError("conversations purge needs --older-than DAYS")
            n = erasure.purge(session, older_than=datetime.now(UTC) - timedelta(days=args.older_than),
                              host=runtime.host_id)
            print(f"erased {n} conversations idle for more than {args.older_than:g} days", file=sys.stderr)
    return 0


def cmd_retrain(args) -> int:
    settings = _settings(args)
    from bot.runtime import Runtime, use_offline_hub_for_local_models
    from finetune.retrain import retrain

    use_offline_hub_for_local_models(settings)
    runtime = Runtime.start(settings)
    outcomes = retrain(runtime, tasks=args.task, dry_run=args.dry_run, echo=lambda m: print(m, file=sys.stderr))
    if args.json:
        print(json.dumps([o.__dict__ for o in outcomes], indent=2, ensure_ascii=False, default=str))
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def cmd_keys(args) -> int:
    settings = _settings(args)
    from bot.runtime import Runtime
    from storage.repositories import api_keys

    runtime = Runtime.start(settings)
    with runtime.sessions() as session:
        if args.action == "create":
            row, key = api_keys.create_api_key(session, name=args.name, scope="admin" if args.admin else args.scope)
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


def cmd_users(args) -> int:
    """UI logins: `users add NAME --role agent|admin` (password from a prompt or stdin)."""
    settings = _settings(args)
    from bot.runtime import Runtime
    from ui.auth import add_user, list_users, remove_user

    runtime = Runtime.start(settings)  # imports an old users file on first use
    sessions = runtime.sessions
    if args.action == "list":
        for user in list_users(sessions).values():
            print(f"{user.name}\t{user.role}")
        return 0
    if not args.name:
        raise SupportbotError(f"users {args.action} needs a NAME")
    if args.action == "remove":
        if not remove_user(sessions, args.name):
            raise SupportbotError(f"no UI user named {args.name!r}")
        print(f"removed {args.name!r}", file=sys.stderr)
        return 0
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        import getpass

        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise SupportbotError("the passwords differ")
    user = add_user(sessions, args.name, args.role, password)
    print(f"{user.name} ({user.role}) can log in to the UI; users are in the database "
          "(restart a running server after adding the first one)", file=sys.stderr)
    return 0


def cmd_models(args) -> int:
    settings = _settings(args)
    from core.adapter_artifact import read_meta
    from core.model_refs import PACKAGED, SHIPPED, resolve

    if args.action == "prepare":
        for name in args.names or [settings.sentiment_model, settings.sentiment_model_zh, settings.chat_model,
                                   settings.embedding_model, settings.intent_model]:
            if name:
                resolved = resolve(name, settings.model_cache_dir)
                if resolved.adapter:
                    resolve(read_meta(resolved.path)["base"], settings.model_cache_dir)
                print(f"ready: {name}", file=sys.stderr)
        return 0
    if args.action in ("activate", "rollback"):
        return _models_change(args, settings)
    for name, spec in PACKAGED.items():
        print(f"{name:<16} packaged  {spec.description}")
    for name, desc in SHIPPED.items():
        print(f"{name:<16} shipped   {desc}")
    _list_model_versions(settings)
    return 0


@contextlib.contextmanager
def _version_session(settings: Settings):
    """A session on the (migrated) database; its failures are one-line errors."""
    from sqlalchemy.exc import OperationalError

    from core.errors import DatabaseUnavailableError
    from storage.db import make_engine, make_session_factory, upgrade

    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        upgrade(settings.resolved_database_url)
        engine = make_engine(settings.resolved_database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    except OperationalError as exc:
        raise DatabaseUnavailableError(f"database unavailable: {exc.orig}") from exc
    try:
        with make_session_factory(engine)() as session:
            yield session
    except OperationalError as exc:
        raise DatabaseUnavailableError(f"database unavailable: {exc.orig}") from exc
    finally:
        engine.dispose()


def _list_model_versions(settings: Settings) -> None:
    """The database's versions per task/route: '*' marks the one served."""
    from bot import versions

    with _version_session(settings) as session:
        listing = versions.versions_public(session, settings)
    for task, entry in listing.items():
        for route, state in entry["routes"].items():
            served = (f"active: {state['active']}" if state["active"]
                      else f"no version active; serving the configured default: {state['configured_default'] or 'off'}")
            print(f"\n{task}/{route}  ({served})")
            for v in (v for v in entry["versions"] if v["route"] == route):
                metric = versions.key_metric(v["metrics"])
                shown = f"{metric[0]}={metric[1]:.4g}" if metric else "-"
                mark = "*" if v["status"] == "active" else " "
                print(f"  {mark} {v['status']:<9} {v['name']:<24} {shown:<18} {v['path'] or '-'}  [{v['id']}]")


def _models_change(args, settings: Settings) -> int:
    from bot import versions
    from core.errors import InputError

    if len(args.names) != 1:
        what = "VERSION (a name or id)" if args.action == "activate" else "TASK"
        raise InputError(f"models {args.action} needs exactly one {what}; got {len(args.names)}")
    with _version_session(settings) as session:
        if args.action == "activate":
            version = versions.activate(session, settings, args.names[0], task=args.task)
        else:
            version = versions.rollback(session, settings, args.names[0], route=args.route)
        session.commit()
        print(f"{version.task}/{version.route} now serves {version.name} ({version.path}) [{version.id}]")
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
    add_serving_commands(sub)
    add_content_commands(sub)
    add_training_commands(sub)
    add_storage_commands(sub)
    add_operator_commands(sub)
    return p


def add_serving_commands(sub) -> None:
    """serve, chat: the bot over HTTP and the UI, or in the terminal."""
    s = sub.add_parser("serve", help="serve the API under /v1 and the UI at /")
    _common(s), _models(s)
    s.add_argument("--host", help="bind address (default 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default 7860)")
    s.add_argument("--no-ui", action="store_true", help="API only")
    s.add_argument("--workers", type=int, help="worker processes (SUPPORTBOT_WORKERS, default 1); more than one "
                                               "serves the API only (app.server:app in each)")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("chat", help="chat with the bot in the terminal (one line per turn)")
    _common(s), _models(s)
    s.add_argument("--conversation", help="continue this conversation id")
    s.add_argument("-m", "--message", action="append", help="send this turn (repeatable) instead of reading stdin")
    s.set_defaults(func=cmd_chat)


def add_content_commands(sub) -> None:
    """kb, sentiment: the knowledge base's articles; classifying texts."""
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


def add_training_commands(sub) -> None:
    """finetune, eval: the recipes (their own flags) and measuring a model."""
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


def add_storage_commands(sub) -> None:
    """db, conversations: the schema, training sets from storage, erasure."""
    s = sub.add_parser("db", help="database schema; training sets from storage")
    _common(s)
    s.add_argument("action", choices=["upgrade", "export"])
    s.add_argument("--what", choices=["sentiment", "intent", "chat"], help="export: which training set")
    s.add_argument("--out", type=Path, help="export: output file (CSV text,label or chat JSONL)")
    s.add_argument("--route", default="default", help="export: model route (sentiment: default or zh)")
    s.add_argument("--since-days", type=float, help="export: only feedback from the last N days")
    s.set_defaults(func=cmd_db)

    s = sub.add_parser("conversations", help="erase a conversation, or purge old ones (GDPR-style)")
    _common(s)
    s.add_argument("action", choices=["erase", "purge"])
    s.add_argument("id", nargs="?", help="erase: the conversation id")
    s.add_argument("--older-than", type=float, metavar="DAYS", help="purge: idle for more than DAYS")
    s.set_defaults(func=cmd_conversations)


def add_operator_commands(sub) -> None:
    """retrain, keys, users, models: the periodic job, who may call, what is served."""
    s = sub.add_parser("retrain", help="the periodic job: fine-tune on new feedback, promote if better")
    _common(s), _models(s)
    s.add_argument("--task", action="append", help="sentiment, sentiment/zh, intent or chat (repeatable; default all)")
    s.add_argument("--dry-run", action="store_true", help="say what would be trained, change nothing")
    s.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    s.set_defaults(func=cmd_retrain)

    s = sub.add_parser("keys", help="API keys")
    _common(s)
    s.add_argument("action", choices=["create", "revoke", "list"])
    s.add_argument("name", nargs="?")
    s.add_argument("--scope", choices=["customer", "agent", "admin"], default="customer",
                   help="customer: its own conversations (default); agent: all conversations, agent replies, "
                        "review; admin: everything")
    s.add_argument("--admin", action="store_true", help="the same as --scope admin")
    s.set_defaults(func=cmd_keys)

    s = sub.add_parser("users", help="UI logins: add/remove/list users with role agent or admin")
    _common(s)
    s.add_argument("action", choices=["add", "remove", "list"])
    s.add_argument("name", nargs="?")
    s.add_argument("--role", choices=["agent", "admin"], default="agent")
    s.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    s.set_defaults(func=cmd_users)

    s = sub.add_parser("models", help="packaged and shipped models; the versions each task serves")
    _common(s), _models(s)
    s.add_argument("action", choices=["list", "prepare", "activate", "rollback"])
    s.add_argument("names", nargs="*", help="prepare: models to convert/cache (default: the configured ones); "
                                            "activate: VERSION (name or id); rollback: TASK")
    s.add_argument("--task", choices=["sentiment", "intent", "chat"], help="activate: the task, when names clash")
    s.add_argument("--route", default="default", help="rollback: the route, e.g. zh (default: default)")
    s.set_defaults(func=cmd_models)


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
