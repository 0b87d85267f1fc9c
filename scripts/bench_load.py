"""Load on the conversation API: concurrent customers, each in its own stored conversation.

    python scripts/bench_load.py                       # the full run: 64 clients x 20 turns, SQLite then PostgreSQL
    python scripts/bench_load.py --quick               # 8 clients x 3 turns
    python scripts/bench_load.py --db postgres --database-url postgresql+psycopg://USER@HOST/DB
    python scripts/bench_load.py --generator local --db sqlite --clients 4 --turns 5   # the shipped chat model

The server is the real app (app.server) under uvicorn in a subprocess on loopback, started
the way `supportbot serve` starts it: migrations on startup, the shipped sentiment, intent
and retrieval models loaded before the first request, the demo knowledge base imported
into the fresh database; rate limiting is off and there is no UI. The database is a fresh
SQLite file, or PostgreSQL 15: a throwaway cluster that this script starts and deletes
(scripts/pg_throwaway.sh, --pg-port), or --database-url.

Each of --clients customers (half English, half Chinese; asyncio + httpx, each its own
connection) sends --turns short questions one after another, all customers at once. The
questions come from scripts/data/kb_questions.jsonl (those with an answer in the demo
knowledge base, no PII, no request for a person, no threat to leave), so the bot mostly
answers; a conversation the escalation rules still hand to a person (two negative turns
in a row) keeps storing the customer's turns without a reply: "held" in the table. A turn is POST /v1/chat/completions with stream=true and a small max_tokens (the
first turn creates the conversation, later ones send its conversation_id); --endpoint
completions (no streaming) and messages (POST /v1/conversations/{id}/messages) are the
other ways in. Per turn: the time from sending to the last byte (and to the first byte
when streaming), the status, and what it acknowledged: a 2xx answer that is complete
(the stream ends with the extras and [DONE], no error event) with the ids of the stored
customer turn, of the reply and of the conversation. Errors: non-2xx, timeouts,
connection errors, broken or incomplete answers.

Afterwards every conversation is read back through GET /v1/conversations/{id}; then the
server is stopped and the database is read directly (SQLAlchemy): every acknowledged
customer turn must be there, in its conversation, with its text, and so must its reply
(role bot); no conversation may hold a customer turn twice (SQLite: integrity_check too).

Generation. --generator stub (the default) points the server's chat backend
(chat_backend=remote, bot.generation.RemoteGenerator) at a tiny OpenAI-compatible server
that this script starts, which streams a short fixed reply at once: what is measured is
the conversation API, the models that classify and retrieve, and the storage, which is
what the load target is about. --generator local is the shipped chat model
(SmolLM2-135M + chat-bitext; up to chat_batch_requests replies decoded together). On the
2-core development machine short runs (--clients 4 --turns 4; --clients 16 --turns 3,
8 English customers at once) took 2.2-2.4 s of wall time per English turn at
--max-tokens 12, batched or not (the CPU is the limit), so 64 x 20 turns (640 English
ones) would take about 25 minutes per database, and with 32 English customers waiting
for the model a turn would take about 75 s, beyond chat_timeout_s (60 s): many replies
would fall back to the article. Hence stub by default.
Chinese turns are answered from the article without generation in both modes
(chat_generate_languages=en).

Prints a table and writes --json, with the machine, the date and the load average (other
processes on the machine make the timings noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import cpu_name, free_port, percentile, wait_healthy  # noqa: E402

QUESTIONS = ROOT / "scripts/data/kb_questions.jsonl"
STUB_MODEL = "stub-chat"
STUB_REPLY = ("Thanks for your message! The help article below has the details, and I am happy to help "
              "with anything else about your order today.").split(" ")


# ---- the server (a subprocess: `bench_load.py --serve PORT`) ---------------------------
def serve(args) -> int:
    import logging

    from core.config import settings_with
    from bot.runtime import Runtime, use_offline_hub_for_local_models

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    remote = dict(chat_backend="remote", chat_remote_url=args.stub_url, chat_remote_model=STUB_MODEL) \
        if args.stub_url else {}
    settings = settings_with(home=args.server_home, database_url=args.database_url, model_cache=args.model_cache,
                             rate_limit_per_minute=0, ui=False, demo_kb=True, chat_max_tokens=args.max_tokens,
                             **remote)
    use_offline_hub_for_local_models(settings)
    runtime = Runtime.start(settings)  # runs the migrations, as `supportbot serve` does
    runtime.load_models()
    import uvicorn

    from app.server import create_app

    uvicorn.run(create_app(runtime, ui=False), host="127.0.0.1", port=args.serve, log_level="warning",
                access_log=False)
    return 0


# ---- the stub generation backend (a subprocess: `bench_load.py --stub-serve PORT`) -----
def stub_serve(port: int) -> int:
    """An OpenAI-compatible /v1/chat/completions that streams a fixed reply of at most
    max_tokens words at once (HTTP/1.1, chunked, keep-alive)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):  # quiet
            pass

        def _json(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.rstrip("/").endswith("/models"):
                return self._json(200, {"object": "list", "data": [{"id": STUB_MODEL, "object": "model"}]})
            self._json(404, {"error": {"message": "not found"}})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            words = STUB_REPLY[: max(1, int(body.get("max_tokens") or 16))]
            pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
            base = {"id": "chatcmpl-stub", "created": int(time.time()), "model": STUB_MODEL}
            if not body.get("stream"):
                return self._json(200, {**base, "object": "chat.completion", "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "".join(pieces)},
                     "finish_reason": "length"}]})
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            events = [{"role": "assistant", "content": ""}] + [{"content": p} for p in pieces] + [None]
            out = b""
            for delta in events:
                choice = {"index": 0, "delta": delta or {}, "finish_reason": None if delta is not None else "length"}
                data = f"data: {json.dumps({**base, 'object': 'chat.completion.chunk', 'choices': [choice]})}\n\n"
                out += f"{len(data.encode()):x}\r\n{data}\r\n".encode()
            done = "data: [DONE]\n\n"
            out += f"{len(done):x}\r\n{done}\r\n0\r\n\r\n".encode()
            self.wfile.write(out)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()
    return 0


class Proc:
    """`python bench_load.py FLAGS` in a subprocess until closed; its output goes to `log`."""

    def __init__(self, flags: list[str], log: Path, ready_url: str, timeout_s: float = 900):
        self.log_path = log
        self.log = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, __file__, *flags], cwd=ROOT, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        failure = wait_healthy(self.proc, ready_url, timeout_s)
        if failure:
            tail = self.tail()
            self.close()
            raise SystemExit(f"{flags[0]} {failure}:\n{tail}")

    def tail(self, n: int = 4000) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-n:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---- the database ----------------------------------------------------------------------
@contextmanager
def database(args, db: str, home: Path):
    """The URL of a fresh database of kind `db`; a throwaway PostgreSQL is deleted afterwards."""
    if db == "sqlite":
        yield f"sqlite:///{home / 'supportbot.db'}"
        return
    if args.database_url:
        yield args.database_url
        return
    script = str(ROOT / "scripts/pg_throwaway.sh")
    subprocess.run([script, "stop", str(args.pg_port)], check=True, capture_output=True)  # a fresh cluster
    started = subprocess.run([script, str(args.pg_port)], capture_output=True, text=True)
    if started.returncode != 0:
        raise SystemExit(f"pg_throwaway.sh {args.pg_port} failed:\n{started.stderr[-2000:]}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([script, "stop", str(args.pg_port)], capture_output=True)


# ---- the customers ---------------------------------------------------------------------
def questions() -> dict[str, list[str]]:
    """Short customer questions the demo knowledge base answers, by language."""
    from bot.escalation import EscalationPolicy
    from bot.redaction import Redactor

    policy, redactor = EscalationPolicy(), Redactor.from_setting("all")
    out: dict[str, list[str]] = {"en": [], "zh": []}
    for line in QUESTIONS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        q = row["question"].strip()
        if (row.get("article_id") and row["language"] in out and not redactor.redact(q).changed
                and not policy.asks_for_person(q) and not policy.threatens_to_leave(q)):
            out[row["language"]].append(q)
    return out


def scripts_for(clients: int, turns: int, seed: int) -> list[tuple[str, list[str]]]:
    """(language, texts) per client: even clients English, odd ones Chinese."""
    pool, rng = questions(), random.Random(seed)
    out = []
    for k in range(clients):
        lang = ("en", "zh")[k % 2]
        out.append((lang, [rng.choice(pool[lang]) for _ in range(turns)]))
    return out


class TurnFailed(Exception):
    pass


def parse_stream(raw: str) -> dict:
    """The extras of the final chunk of a pipeline SSE stream; raises TurnFailed if broken."""
    events = [line[len("data: "):] for line in raw.splitlines() if line.startswith("data: ")]
    if not events or events[-1] != "[DONE]":
        raise TurnFailed("stream did not end with [DONE]")
    final = None
    for e in events[:-1]:
        body = json.loads(e)
        if "error" in body:
            raise TurnFailed(f"error event: {body['error'].get('type')}: {body['error'].get('message', '')[:200]}")
        if body["choices"][0].get("finish_reason") == "stop":
            final = body
    if final is None or "customer_message_id" not in final:
        raise TurnFailed("stream ended without the final chunk and its extras")
    return final


async def one_turn(client, endpoint: str, cid: str | None, text: str, max_tokens: int) -> tuple[dict, float | None]:
    """(acknowledged ids, seconds to the first byte or None); raises on any failure."""
    from time import perf_counter

    t0 = perf_counter()
    if endpoint == "messages":
        r = await client.post(f"/v1/conversations/{cid}/messages", json={"text": text})
        if r.status_code != 200:
            raise TurnFailed(f"HTTP {r.status_code}: {r.text[:200]}")
        body = r.json()
        return ({"conversation_id": cid, "message_id": body["message_id"],
                 "reply_id": body["reply"]["message_id"] if body.get("reply") else None}, None)
    req = {"model": "supportbot", "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens,
           "stream": endpoint == "stream"}
    if cid is not None:
        req["conversation_id"] = cid
    if endpoint == "completions":
        r = await client.post("/v1/chat/completions", json=req)
        if r.status_code != 200:
            raise TurnFailed(f"HTTP {r.status_code}: {r.text[:200]}")
        final, ttfb = r.json(), None
    else:
        ttfb, parts = None, []
        async with client.stream("POST", "/v1/chat/completions", json=req) as r:
            if r.status_code != 200:
                await r.aread()
                raise TurnFailed(f"HTTP {r.status_code}: {r.text[:200]}")
            async for chunk in r.aiter_text():
                if ttfb is None:
                    ttfb = perf_counter() - t0
                parts.append(chunk)
        final = parse_stream("".join(parts))
    reply = final["message_id"] if final["message_id"] != final["customer_message_id"] else None
    return ({"conversation_id": final["conversation_id"], "message_id": final["customer_message_id"],
             "reply_id": reply}, ttfb)


async def customer(k: int, url: str, lang: str, texts: list[str], args, start: asyncio.Event) -> dict:
    import httpx

    out = {"client": k, "language": lang, "conversation_id": None, "turns": [], "setup_error": None}
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(args.timeout)) as client:
        if args.endpoint == "messages":  # the conversation first (not a turn, not timed)
            try:
                r = await client.post("/v1/conversations", json={"channel": "bench-load", "customer_ref": f"c{k}"})
                r.raise_for_status()
                out["conversation_id"] = r.json()["id"]
            except Exception as exc:  # noqa: BLE001 - reported as an error
                out["setup_error"] = f"{type(exc).__name__}: {exc}"[:300]
                return out
        await start.wait()
        for i, text in enumerate(texts):
            sent = time.perf_counter()
            turn = {"i": i, "text": text, "sent_s": sent}
            try:
                ack, ttfb = await one_turn(client, args.endpoint, out["conversation_id"], text, args.max_tokens)
                turn.update(ack=ack, ttfb_s=ttfb)
                out["conversation_id"] = out["conversation_id"] or ack["conversation_id"]
            except httpx.TimeoutException as exc:
                turn["error"] = f"timeout: {type(exc).__name__}"
            except (httpx.HTTPError, TurnFailed, ValueError, KeyError) as exc:
                turn["error"] = f"{type(exc).__name__}: {exc}"[:300]
            turn["seconds"] = time.perf_counter() - sent
            out["turns"].append(turn)
    return out


async def run_load(url: str, scripts: list[tuple[str, list[str]]], args) -> tuple[list[dict], float]:
    start = asyncio.Event()
    tasks = [asyncio.create_task(customer(k, url, lang, texts, args, start)) for k, (lang, texts) in enumerate(scripts)]
    await asyncio.sleep(0.5)  # every client connected and ready (messages: its conversation created)
    t0 = time.perf_counter()
    start.set()
    results = await asyncio.gather(*tasks)
    return results, time.perf_counter() - t0


def warm_up(url: str, args) -> None:
    """A few turns in both languages before timing: first calls pay for lazy set-up."""
    import httpx

    with httpx.Client(base_url=url, timeout=args.timeout) as client:
        for text in ("How long does standard shipping take?", "请问怎么申请退货？") * 2:
            r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": text}],
                                                          "max_tokens": args.max_tokens})
            if r.status_code != 200:
                raise SystemExit(f"warm-up turn failed: {r.status_code} {r.text[:300]}")


# ---- checking what was acknowledged -------------------------------------------------
def check_api(url: str, results: list[dict]) -> dict:
    """GET /v1/conversations/{id}: the acknowledged turns are there, in order."""
    import httpx

    missing, bad = 0, []
    with httpx.Client(base_url=url, timeout=60) as client:
        for res in results:
            acked = [t for t in res["turns"] if "ack" in t]
            if not acked:
                continue
            r = client.get(f"/v1/conversations/{res['conversation_id']}")
            if r.status_code != 200:
                bad.append(f"GET {res['conversation_id']}: {r.status_code}")
                missing += len(acked)
                continue
            ids = [m["id"] for m in r.json()["messages"]]
            for t in acked:
                if t["ack"]["message_id"] not in ids or (t["ack"]["reply_id"] and t["ack"]["reply_id"] not in ids):
                    missing += 1
            order = [ids.index(t["ack"]["message_id"]) for t in acked if t["ack"]["message_id"] in ids]
            if order != sorted(order):
                bad.append(f"{res['conversation_id']}: turns out of order")
    return {"missing": missing, "problems": bad[:10]}


def check_database(db_url: str, results: list[dict]) -> dict:
    """Read the database directly (the server stopped): every acknowledged turn and reply."""
    import sqlalchemy as sa

    from storage.db import make_engine
    from storage.models import Conversation, Message

    acked = [(res, t) for res in results for t in res["turns"] if "ack" in t]
    cids = sorted({res["conversation_id"] for res, _ in acked})
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    messages: dict[str, tuple] = {}
    try:
        with engine.connect() as db:
            for i in range(0, len(cids), 200):
                q = sa.select(Message.id, Message.conversation_id, Message.role, Message.text, Message.model_version) \
                    .where(Message.conversation_id.in_(cids[i:i + 200]))
                messages.update({row.id: row for row in db.execute(q)})
            conversations = {c for (c,) in db.execute(sa.select(Conversation.id).where(Conversation.id.in_(cids)))} \
                if cids else set()
            integrity = db.execute(sa.text("PRAGMA integrity_check")).scalar() \
                if engine.dialect.name == "sqlite" else None
    finally:
        engine.dispose()
    found, replies_found, lost = 0, 0, []
    for res, t in acked:
        ack = t["ack"]
        m = messages.get(ack["message_id"])
        ok = (m is not None and m.conversation_id == res["conversation_id"] and m.role == "customer"
              and m.text == t["text"])
        if ack["reply_id"]:
            reply = messages.get(ack["reply_id"])
            reply_ok = reply is not None and reply.conversation_id == res["conversation_id"] and reply.role == "bot"
            ok, replies_found = ok and reply_ok, replies_found + reply_ok
        found += ok
        if not ok and len(lost) < 10:
            lost.append({"conversation_id": res["conversation_id"], **ack, "text": t["text"]})
    per_conversation: dict[str, int] = {}
    for m in messages.values():
        if m.role == "customer":
            per_conversation[m.conversation_id] = per_conversation.get(m.conversation_id, 0) + 1
    sent = {res["conversation_id"]: len(res["turns"]) for res in results if res["conversation_id"]}
    versions: dict[str, int] = {}
    for m in messages.values():
        if m.role == "bot":
            key = "stub" if (m.model_version or "").startswith(STUB_MODEL + "@") else m.model_version
            versions[key] = versions.get(key, 0) + 1
    return {"found": found, "replies_found": replies_found, "lost": lost,
            "conversations_missing": len(set(cids) - conversations),
            # more customer turns stored than sent in a conversation: a duplicate
            "duplicates": sum(max(0, n - sent.get(c, 0)) for c, n in per_conversation.items()),
            "reply_model_versions": versions, "sqlite_integrity": integrity}


# ---- one database ------------------------------------------------------------------
def summarize(results: list[dict], wall_s: float) -> dict:
    turns = [t for res in results for t in res["turns"]]
    ok = [t for t in turns if "ack" in t]
    errors: dict[str, int] = {}
    examples: list[str] = []
    for res in results:
        if res["setup_error"]:
            errors["conversation not created"] = errors.get("conversation not created", 0) + 1
            examples.append(res["setup_error"])
    for t in turns:
        if "error" in t:
            name, _, rest = t["error"].partition(": ")
            kind = " ".join(rest.split()[:2]) if name == "TurnFailed" else name  # "HTTP 500", "ReadError"
            errors[kind] = errors.get(kind, 0) + 1
            if len(examples) < 10:
                examples.append(t["error"])
    latency = [t["seconds"] for t in ok]
    ttfb = [t["ttfb_s"] for t in ok if t.get("ttfb_s") is not None]
    by_lang = {}
    for lang in ("en", "zh"):
        lat = [t["seconds"] for res in results if res["language"] == lang for t in res["turns"] if "ack" in t]
        by_lang[lang] = {"turns": len(lat), "p50_ms": _ms(percentile(lat, 50)), "p99_ms": _ms(percentile(lat, 99))}
    return {"turns": len(turns), "acked": len(ok),
            "errors": sum(errors.values()), "error_kinds": errors, "error_examples": examples,
            "held": sum(1 for t in ok if t["ack"]["reply_id"] is None),
            "p50_ms": _ms(percentile(latency, 50)), "p99_ms": _ms(percentile(latency, 99)),
            "max_ms": _ms(max(latency) if latency else None), "mean_ms": _ms(sum(latency) / len(latency) if latency else None),
            "ttfb_p50_ms": _ms(percentile(ttfb, 50)), "ttfb_p99_ms": _ms(percentile(ttfb, 99)),
            "by_language": by_lang, "wall_s": round(wall_s, 2), "turns_per_s": round(len(ok) / wall_s, 2)}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def run_db(args, db: str, scripts) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"bench-load-{db}-"))
    stub = server = None
    started = time.perf_counter()
    try:
        with database(args, db, home) as db_url:
            flags = ["--serve", str(free_port()), "--server-home", str(home), "--database-url", db_url,
                     "--model-cache", str(args.model_cache), "--max-tokens", str(args.max_tokens)]
            if args.generator == "stub":
                port = free_port()
                stub = Proc(["--stub-serve", str(port)], home / "stub.log", f"http://127.0.0.1:{port}/v1/models", 60)
                flags += ["--stub-url", f"http://127.0.0.1:{port}/v1"]
            print(f"[{db}] starting the server (migrations, models, demo knowledge base)...", flush=True)
            t = time.perf_counter()
            server = Proc(flags, home / "server.log", f"http://127.0.0.1:{flags[1]}/healthz")
            startup_s = time.perf_counter() - t
            url = f"http://127.0.0.1:{flags[1]}"
            warm_up(url, args)
            n = sum(len(texts) for _, texts in scripts)
            print(f"[{db}] server up in {startup_s:.0f} s; {len(scripts)} clients x {args.turns} turns = {n} turns...",
                  flush=True)
            load_avg = os.getloadavg()
            results, wall_s = asyncio.run(run_load(url, scripts, args))
            out = summarize(results, wall_s)
            out.update(db=db, database=db_url.split("://")[0], server_startup_s=round(startup_s, 1),
                       load_average_before=load_avg, load_average_after=os.getloadavg())
            print(f"[{db}] {out['acked']}/{out['turns']} acknowledged, {out['errors']} errors, "
                  f"p50 {out['p50_ms']} ms, p99 {out['p99_ms']} ms, {out['turns_per_s']} turns/s; checking...", flush=True)
            out["api_check"] = check_api(url, results)
            if out["errors"]:
                out["server_log_tail"] = server.tail(6000)
            server.close()
            server = None
            out["db_check"] = check_database(db_url, results)
            out["found"] = out["db_check"]["found"]
            if args.save_turns:
                out["clients"] = [{**r, "turns": [{k: v for k, v in t.items() if k != "sent_s"} for t in r["turns"]]}
                                  for r in results]
    finally:
        for p in (server, stub):
            if p is not None:
                p.close()
        if args.keep:
            print(f"[{db}] kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    out["total_s"] = round(time.perf_counter() - started, 1)
    return out


# ---- report ----------------------------------------------------------------------------
def machine() -> dict:
    cpu = cpu_name()
    versions = {}
    for dist in ("torch", "transformers", "fastapi", "uvicorn", "sqlalchemy", "httpx", "psycopg"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        pg = subprocess.run([os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin") + "/postgres", "--version"],
                            capture_output=True, text=True).stdout.strip()
    except OSError:
        pg = None
    import sqlite3

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "postgres": pg, **versions, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_average_at_start": os.getloadavg()}


def print_table(result: dict) -> None:
    a = result["args"]
    how = {"stream": "/v1/chat/completions, streamed", "completions": "/v1/chat/completions",
           "messages": "/v1/conversations/{id}/messages"}[a["endpoint"]]
    print(f"\n== load: {a['clients']} clients x {a['turns']} turns, {how}, "
          f"max_tokens {a['max_tokens']}, generator {a['generator']} ==")
    head = (f"{'db':<10}{'turns':>7}{'errors':>7}{'acked':>7}{'found':>7}{'held':>6}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'max ms':>9}{'ttfb p50':>9}{'ttfb p99':>9}{'turns/s':>9}{'wall s':>8}")
    print(head)
    for r in result["runs"]:
        cells = [r["turns"], r["errors"], r["acked"], r["found"], r["held"]]
        times = [r["p50_ms"], r["p99_ms"], r["max_ms"], r["ttfb_p50_ms"], r["ttfb_p99_ms"]]
        print(f"{r['db']:<10}" + "".join(f"{c:>7}" for c in cells[:4]) + f"{cells[4]:>6}"
              + "".join(f"{'-' if v is None else f'{v:.0f}':>9}" for v in times)
              + f"{r['turns_per_s']:>9.2f}{r['wall_s']:>8.1f}")
    for r in result["runs"]:
        lang = ", ".join(f"{k} p50/p99 {v['p50_ms']}/{v['p99_ms']} ms" for k, v in r["by_language"].items())
        print(f"{r['db']}: {lang}; replies by {r['db_check']['reply_model_versions']}; "
              f"API check missing {r['api_check']['missing']}; duplicates {r['db_check']['duplicates']}"
              + (f"; sqlite integrity {r['db_check']['sqlite_integrity']}" if r["db_check"]["sqlite_integrity"] else ""))
        if r["errors"]:
            print(f"  errors: {r['error_kinds']}; e.g. {r['error_examples'][:3]}")
        if r["db_check"]["lost"]:
            print(f"  LOST acknowledged turns, e.g. {r['db_check']['lost'][:3]}")
    print("(held: acknowledged turns without a reply, a human agent holds the conversation; "
          "ttfb: first byte of the stream)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--clients", type=int, default=64, help="concurrent customers, each its own conversation")
    ap.add_argument("--turns", type=int, default=20, help="sequential turns per customer")
    ap.add_argument("--max-tokens", type=int, default=12, help="reply length limit of each turn (short replies)")
    ap.add_argument("--generator", choices=["stub", "local"], default="stub",
                    help="stub: an instant OpenAI-compatible server; local: the shipped chat model")
    ap.add_argument("--endpoint", choices=["stream", "completions", "messages"], default="stream",
                    help="/v1/chat/completions streamed or not, or POST /v1/conversations/{id}/messages")
    ap.add_argument("--quick", action="store_true", help="8 clients x 3 turns")
    ap.add_argument("--timeout", type=float, default=300.0, help="client time limit per request (s)")
    ap.add_argument("--database-url", help="a PostgreSQL URL to use instead of a throwaway cluster")
    ap.add_argument("--pg-port", type=int, default=54331, help="port of the throwaway cluster (CI uses 54329)")
    ap.add_argument("--seed", type=int, default=0, help="which questions each customer asks")
    ap.add_argument("--save-turns", action="store_true", help="every turn in the JSON")
    ap.add_argument("--keep", action="store_true", help="keep the server home (SQLite file, logs)")
    ap.add_argument("--json", type=Path, default=ROOT / "runs/bench-load.json")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--stub-serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--stub-url", help=argparse.SUPPRESS)
    ap.add_argument("--server-home", help=argparse.SUPPRESS)
    ap.add_argument("--model-cache", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.stub_serve:
        return stub_serve(args.stub_serve)
    if args.serve:
        return serve(args)
    problems = [f"--{k} must be at least 1" for k in ("clients", "turns", "max_tokens") if getattr(args, k) < 1]
    if args.database_url and not args.database_url.startswith("postgresql"):
        problems.append("--database-url takes a PostgreSQL URL (postgresql+psycopg://...); SQLite is always a fresh file")
    if problems:
        ap.error("; ".join(problems))
    if args.quick:
        args.clients, args.turns = 8, 3

    from core.config import settings_with

    args.model_cache = settings_with().model_cache_dir.resolve()  # the server homes are temporary
    result = {"machine": machine(), "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                                             if k not in ("serve", "stub_serve", "stub_url", "server_home")},
              "runs": []}
    print(f"machine: {result['machine']}", flush=True)
    scripts = scripts_for(args.clients, args.turns, args.seed)
    for db in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
        result["runs"].append(run_db(args, db, scripts))
    print_table(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    print(f"\nwrote {args.json}")
    failed = any(r["errors"] or r["found"] != r["acked"] or r["api_check"]["missing"] or r["db_check"]["duplicates"]
                 for r in result["runs"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
