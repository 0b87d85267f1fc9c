"""Several workers on one PostgreSQL (issue 19): N worker processes (uvicorn
app.server:app, one port each, each its own home: as if on N hosts) started at the same
moment on an empty database, then

  1. rate limit: one key sends 3 x burst requests round robin over the workers; the limit
     holds in total (allowed <= burst + refill), and every worker answers some with 429;
  2. load: C clients x T turns spread over the workers (turn t of client c goes to worker
     (c + t) mod N), each client with its own key;
  3. hot swap: as the load starts, a new sentiment version (stored relative to the shared
     models directory) is activated on worker 0; the time until each worker serves it is
     measured; the clients' second half of turns waits for it;
  4. kill -9 of the last worker a third into the second half; turns it dropped are sent
     again to the others (never acknowledged, so not lost);
  5. every acknowledged turn (customer message and reply ids) is looked up in the database.

    export SUPPORTBOT_TEST_POSTGRES_URL=$(scripts/pg_throwaway.sh 54329)
    python scripts/bench_workers.py --clients 64 --turns 20 --json runs/bench_workers.json

Tiny random models (tests/fixtures/tiny.py) unless --sentiment-model/--chat-model are
given: the numbers measure the shared state, not the models. tests/integration/
test_multiworker.py runs the same scenario, smaller, and checks it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: import bot/ and storage/ from the checkout
    sys.path.insert(0, str(REPO))


@dataclass
class Worker:
    index: int
    port: int
    proc: subprocess.Popen
    log: Path
    killed: bool = False
    stats: dict = field(default_factory=lambda: {"requests": 0, "acknowledged": 0, "errors": 0, "rate_limited": 0,
                                                  "lost_to_kill": 0})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_database(server_url: str) -> tuple[str, callable]:
    """A new database on the PostgreSQL server of `server_url`; (its URL, drop())."""
    import sqlalchemy as sa

    server = sa.make_url(server_url)
    name = f"supportbot_workers_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop():
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return server.set(database=name).render_as_string(hide_password=False), drop


def worker_env(db_url: str, home: Path, models_dir: Path, sentiment: Path, chat: Path, burst: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env.update(SUPPORTBOT_DATABASE_URL=db_url, SUPPORTBOT_HOME=str(home), SUPPORTBOT_MODELS_DIR=str(models_dir),
               SUPPORTBOT_SENTIMENT_MODEL=str(sentiment), SUPPORTBOT_SENTIMENT_MODEL_ZH="none",
               SUPPORTBOT_INTENT_MODEL="none", SUPPORTBOT_CHAT_MODEL=str(chat), SUPPORTBOT_DEMO_KB="false",
               SUPPORTBOT_CHAT_CONTEXT_TOKENS="256", SUPPORTBOT_CHAT_MAX_TOKENS="4", SUPPORTBOT_UI="false",
               SUPPORTBOT_THREADS="1", SUPPORTBOT_MODEL_VERSIONS_POLL_S="0.2", SUPPORTBOT_LOG_FORMAT="json",
               # one token a minute: over a run of a few minutes the burst is what a key gets
               SUPPORTBOT_RATE_LIMIT_PER_MINUTE="1", SUPPORTBOT_RATE_LIMIT_BURST=str(burst),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def start_workers(n: int, envs: list[dict], logdir: Path) -> list[Worker]:
    """Start all N at the same moment (they race to upgrade the empty database)."""
    workers = []
    for i in range(n):
        port, log = _free_port(), logdir / f"worker{i}.log"
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.server:app", "--host", "127.0.0.1",
                                 "--port", str(port), "--log-level", "warning"],
                                cwd=REPO, env=envs[i], stdout=open(log, "w"), stderr=subprocess.STDOUT)
        workers.append(Worker(i, port, proc, log))
    return workers


def wait_healthy(workers: list[Worker], timeout_s: float = 300) -> float:
    t0 = time.monotonic()
    pending = list(workers)
    while pending:
        for w in list(pending):
            if w.proc.poll() is not None:
                raise RuntimeError(f"worker {w.index} exited: {w.log.read_text()[-3000:]}")
            try:
                if httpx.get(w.url + "/healthz", timeout=2).status_code == 200:
                    pending.remove(w)
            except httpx.HTTPError:
                pass
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"workers {[w.index for w in pending]} not healthy in {timeout_s:g} s")
        time.sleep(0.2)
    return time.monotonic() - t0


def stop(workers: list[Worker]) -> None:
    for w in workers:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGINT)
    for w in workers:
        try:
            w.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            w.proc.kill()


def make_keys(db_url: str, n_clients: int) -> dict:
    from storage.db import make_engine, make_session_factory
    from storage.repositories import api_keys

    engine = make_engine(db_url)
    try:
        with make_session_factory(engine).begin() as s:
            keys = {"admin": api_keys.create_api_key(s, name="admin", scope="admin")[1],
                    "greedy": api_keys.create_api_key(s, name="greedy", scope="customer")[1],
                    # the swap is watched with /v1/sentiment calls, limited like any other key's
                    "probes": [api_keys.create_api_key(s, name=f"probe{p}", scope="customer")[1] for p in range(40)],
                    "clients": [api_keys.create_api_key(s, name=f"client{c}", scope="customer")[1]
                                for c in range(n_clients)]}
    finally:
        engine.dispose()
    return keys


def rate_limit_phase(workers: list[Worker], key: str, burst: int) -> dict:
    per_worker = {w.index: {"allowed": 0, "429": 0} for w in workers}
    headers = {"Authorization": f"Bearer {key}"}
    t0 = time.monotonic()
    for i in range(3 * burst):
        w = workers[i % len(workers)]
        r = httpx.get(w.url + "/v1/models", headers=headers, timeout=30)
        per_worker[w.index]["allowed" if r.status_code == 200 else str(r.status_code)] += 1
    elapsed = time.monotonic() - t0
    allowed = sum(v["allowed"] for v in per_worker.values())
    return {"sent": 3 * burst, "burst": burst, "allowed": allowed, "elapsed_s": round(elapsed, 2),
            # one token a minute refills: at most this many can be allowed in total
            "allowed_at_most": burst + int(elapsed // 60) + 1, "per_worker": per_worker}


def load_phase(workers: list[Worker], keys: list[str], turns: int, on_progress,
               gate: threading.Event | None = None) -> list[dict]:
    """Each client: a conversation, then `turns` turns spread over the live workers. With a
    `gate`, a client's second half of turns waits for it (the hot swap is done by then)."""
    acknowledged: list[dict] = []
    lock = threading.Lock()

    def send(w: Worker, client: httpx.Client, method: str, path: str, body: dict):
        with lock:
            w.stats["requests"] += 1
        try:
            r = client.request(method, w.url + path, json=body, timeout=120)
        except httpx.HTTPError:
            with lock:
                w.stats["lost_to_kill" if w.killed else "errors"] += 1
            return None
        with lock:
            if r.status_code == 429:
                w.stats["rate_limited"] += 1
            elif r.status_code not in (200, 201):
                w.stats["errors"] += 1
        return r if r.status_code in (200, 201) else None

    def pick(c: int, t: int) -> Worker:
        live = [w for w in workers if not w.killed]
        return live[(c + t) % len(live)]

    def client_run(c: int) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {keys[c]}"}) as client:
            r = None
            while r is None:
                r = send(pick(c, 0), client, "POST", "/v1/conversations", {"channel": "bench"})
            cid = r.json()["id"]
            for t in range(turns):
                if gate is not None and t == turns // 2:
                    gate.wait()
                r = None
                while r is None:  # a turn lost with the killed worker was never acknowledged: send it again
                    w = pick(c, t)
                    r = send(w, client, "POST", f"/v1/conversations/{cid}/messages",
                             {"text": f"client {c} turn {t}: where is my parcel?"})
                    if r is None and not w.killed:
                        return  # an error on a live worker: counted, this client stops
                body = r.json()
                with lock:
                    w.stats["acknowledged"] += 1
                    acknowledged.append({"conversation_id": cid, "message_id": body["message_id"],
                                         "reply_id": (body.get("reply") or {}).get("message_id")})
                    n = len(acknowledged)
                on_progress(n)

    threads = [threading.Thread(target=client_run, args=(c,)) for c in range(len(keys))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return acknowledged


def served_sentiment(w: Worker, keys: list[str]) -> str | None:
    """The sentiment model `w` serves (each call takes a token: the keys take turns)."""
    for _ in range(len(keys)):
        try:
            r = httpx.post(w.url + "/v1/sentiment", json={"texts": ["fine"]},
                           headers={"Authorization": f"Bearer {keys[0]}"}, timeout=30)
        except httpx.HTTPError:
            return None
        if r.status_code != 429:
            return r.json()["model"] if r.status_code == 200 else None
        keys.append(keys.pop(0))
    return None


def hot_swap(workers: list[Worker], db_url: str, admin_key: str, probe_keys: list[str], new_model: Path,
             models_dir: Path, timeout_s: float = 120) -> dict:
    """Register `new_model` (stored relative to the models directory) and activate it on
    worker 0; seconds until each worker serves it."""
    from storage.db import make_engine, make_session_factory
    from storage.repositories import model_versions

    engine = make_engine(db_url)
    try:
        with make_session_factory(engine).begin() as s:
            stored = model_versions.path_to_store(str(new_model), models_dir)
            version = model_versions.create_model_version(s, task="sentiment", name="swapped", path=stored)
            version_id = version.id
    finally:
        engine.dispose()
    before = {w.index: served_sentiment(w, probe_keys) for w in workers}
    t0 = time.monotonic()
    r = httpx.post(workers[0].url + f"/v1/model-versions/{version_id}/activate",
                   headers={"Authorization": f"Bearer {admin_key}"}, timeout=60)
    r.raise_for_status()
    seen: dict[int, float] = {}
    while len(seen) < len(workers) and time.monotonic() - t0 < timeout_s:
        for w in workers:
            if w.index not in seen and not w.killed:
                now = served_sentiment(w, probe_keys)
                if now is not None and now != before[w.index]:
                    seen[w.index] = round(time.monotonic() - t0, 2)
        time.sleep(0.05)
    return {"stored_path": stored, "before": before, "seconds_to_serve": seen,
            "all_workers_s": max(seen.values()) if len(seen) == len(workers) else None}


def found_in_database(db_url: str, acknowledged: list[dict]) -> int:
    import sqlalchemy as sa

    from storage.db import make_engine
    from storage.models import Message

    ids = {a["message_id"] for a in acknowledged} | {a["reply_id"] for a in acknowledged if a["reply_id"]}
    engine = make_engine(db_url)
    try:
        with engine.connect() as c:
            present = set(c.execute(sa.select(Message.id)).scalars())
    finally:
        engine.dispose()
    return sum(1 for a in acknowledged if a["message_id"] in present and (a["reply_id"] is None or a["reply_id"] in present)) \
        if ids else 0


def run(server_url: str, workdir: Path, *, workers: int = 3, clients: int = 12, turns: int = 5,
        burst: int | None = None, sentiment: Path | None = None, swapped: Path | None = None,
        chat: Path | None = None) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    models_dir = workdir / "models"  # the shared models directory (each host may mount it elsewhere)
    if sentiment is None or swapped is None or chat is None:
        sys.path.insert(0, str(REPO / "tests"))
        from fixtures import tiny

        sentiment = sentiment or tiny.build_bert_classifier(models_dir / "sentiment-a", seed=0)
        swapped = swapped or tiny.build_bert_classifier(models_dir / "sentiment-b", seed=1)
        chat = chat or tiny.build_chat_lm(models_dir / "chat")
    burst = burst or turns + 10  # the load's keys never reach it: one conversation, T turns, retries
    db_url, drop = fresh_database(server_url)
    envs = [worker_env(db_url, workdir / f"home{i}", models_dir, sentiment, chat, burst) for i in range(workers)]
    procs = start_workers(workers, envs, workdir)
    result: dict = {"workers": workers, "clients": clients, "turns": turns}
    try:
        result["start_s"] = round(wait_healthy(procs), 1)
        keys = make_keys(db_url, clients)
        result["rate_limit"] = rate_limit_phase(procs, keys["greedy"], burst)

        total = clients * turns
        kill_at, swapped_everywhere = threading.Event(), threading.Event()
        half = clients * (turns // 2)
        swap_result: dict = {}
        kill_result: dict = {}
        acked = [0]

        def progress(n: int) -> None:
            acked[0] = n
            if n >= half + (total - half) // 3:  # under load: a third into the second half
                kill_at.set()

        def swap() -> None:
            try:
                swap_result.update(hot_swap(procs, db_url, keys["admin"], keys["probes"], swapped, models_dir))
            finally:
                swapped_everywhere.set()

        def kill() -> None:  # after the swap, while the second half of the turns is sent
            kill_at.wait(timeout=600)
            victim = procs[-1]
            victim.killed = True
            os.kill(victim.proc.pid, signal.SIGKILL)
            kill_result.update(killed_worker=victim.index, acknowledged_before_kill=acked[0])

        t0 = time.monotonic()
        chaos = [threading.Thread(target=swap), threading.Thread(target=kill)]
        for th in chaos:
            th.start()
        acknowledged = load_phase(procs, keys["clients"], turns, progress, gate=swapped_everywhere)
        kill_at.set()
        for th in chaos:
            th.join()
        result["load_s"] = round(time.monotonic() - t0, 1)
        result["swap"] = swap_result
        result["kill"] = kill_result
        result["per_worker"] = {w.index: dict(w.stats) for w in procs}
        result["requests"] = sum(w.stats["requests"] for w in procs)
        result["acknowledged"] = len(acknowledged)
        result["found"] = found_in_database(db_url, acknowledged)
        result["errors_on_live_workers"] = sum(w.stats["errors"] for w in procs if not w.killed)
        result["turns_per_s"] = round(len(acknowledged) / max(result["load_s"], 1e-9), 1)
    finally:
        stop(procs)
        drop()
    return result


def table(r: dict) -> str:
    lines = [f"{r['workers']} workers, {r['clients']} clients x {r['turns']} turns; started in {r['start_s']} s; "
             f"load {r['load_s']} s ({r['turns_per_s']} turns/s)",
             f"requests {r['requests']}, acknowledged {r['acknowledged']}, found {r['found']}, "
             f"errors on live workers {r['errors_on_live_workers']}; worker {r['kill'].get('killed_worker')} killed -9 "
             f"after {r['kill'].get('acknowledged_before_kill')} acknowledged turns",
             f"{'worker':>6} {'requests':>9} {'acked':>6} {'errors':>7} {'lost(kill)':>10} {'rl allowed':>10} "
             f"{'rl 429':>7} {'swap s':>7}"]
    rl = r["rate_limit"]["per_worker"]
    for i, s in r["per_worker"].items():
        lines.append(f"{i:>6} {s['requests']:>9} {s['acknowledged']:>6} {s['errors']:>7} {s['lost_to_kill']:>10} "
                     f"{rl[i]['allowed']:>10} {rl[i].get('429', 0):>7} {r['swap']['seconds_to_serve'].get(i, '-')!s:>7}")
    lines.append(f"rate limit: {r['rate_limit']['sent']} sent with burst {r['rate_limit']['burst']}: "
                 f"{r['rate_limit']['allowed']} allowed (at most {r['rate_limit']['allowed_at_most']})")
    lines.append(f"hot swap seen by every worker after {r['swap']['all_workers_s']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--postgres-url", default=os.environ.get("SUPPORTBOT_TEST_POSTGRES_URL"),
                   help="a PostgreSQL server (any database on it); default $SUPPORTBOT_TEST_POSTGRES_URL")
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--turns", type=int, default=20)
    p.add_argument("--workdir", type=Path, default=Path("/tmp") / f"bench-workers-{uuid.uuid4().hex[:6]}")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)
    if not args.postgres_url:
        p.error("give --postgres-url or set SUPPORTBOT_TEST_POSTGRES_URL (scripts/pg_throwaway.sh)")
    result = run(args.postgres_url, args.workdir, workers=args.workers, clients=args.clients, turns=args.turns)
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
