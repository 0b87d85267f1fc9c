"""Cold start and peak memory of `supportbot serve` with every default model: the previous
defaults ("before") against today's ("after"), one after the other in the same run.

    python scripts/bench_serve.py                          # the full run (README numbers), ~8 min on 2 cores
    python scripts/bench_serve.py --quick --configs after  # a quick check: today's defaults, short workload
    python scripts/bench_serve.py --configs after --starts warm   # one warm start on ./var/models

Configurations (SUPPORTBOT_* settings; everything else is the default):
  before  SUPPORTBOT_CHAT_ENGINE=torch, SUPPORTBOT_INFERENCE_DTYPE=fp32,
          SUPPORTBOT_SENTIMENT_MODEL_ZH=sentiment-zh (Gemma-3-270M)
  after   today's defaults (none of those set)
Each is started cold (an empty model cache and an empty SUPPORTBOT_HOME: every packaged
model it needs is converted and the demo knowledge base is imported and embedded, as on
a fresh clone) and then warm (a second start on the same cache and home, as a second
`make run`). With --starts warm alone the warm start uses --model-cache (default
./var/models, which `make run` fills) and a new home.

Each start is the real `supportbot serve`, with the UI as `make run` serves it (--no-ui:
the API alone); its home is also its working directory (no .env is read; inherited
SUPPORTBOT_* variables are dropped); a free loopback port, rate limit off,
SUPPORTBOT_CHAT_GENERATE_LANGUAGES=en (the English reply is written by the chat model). Measured from the moment the process is started:
1. ready: /healthz answers 200 (polled every 0.1 s);
2. first sentiment answer: POST /v1/sentiment with one English and one Chinese text, sent
   as soon as it is ready;
3. first chat reply: POST /v1/chat/completions (model "supportbot", an English question,
   not streamed), sent right after that answer;
and what the server itself logged (app/startup.py): when its models were ready, and how
many of those seconds were converting packaged models. Then a fixed workload: --texts
sentiment texts (the questions of scripts/data/kb_questions.jsonl, English and Chinese
alternately) in requests of --request-size, and --chat-turns customer turns (English and
Chinese alternately, each a new conversation). Last, before it is stopped, the server's
peak memory: VmHWM of its process (/proc/PID/status) plus that of its child processes,
if any. The model cache's size on disk is reported too.

Prints a table and writes --json (runs/bench-serve.json), with the machine, the date and
the load average at the start (other processes on the machine make the timings noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import cpu_name, free_port  # noqa: E402

CONFIGS = {
    "before": {"SUPPORTBOT_CHAT_ENGINE": "torch", "SUPPORTBOT_INFERENCE_DTYPE": "fp32",
               "SUPPORTBOT_SENTIMENT_MODEL_ZH": "sentiment-zh"},
    "after": {},
}
STARTS = ("cold", "warm")
FIRST_TEXTS = ["The refund took forever", "这部电影很无聊。"]
FIRST_QUESTION = "How many days do I have to send something back?"
CHAT_QUESTIONS = [
    "How many days do I have to send something back?",
    "我想退货，退款需要多长时间？",
    "How long does standard shipping take?",
    "怎么申请电子发票？",
    "How do I reset my password?",
    "可以修改收货地址吗？",
]
QUESTIONS = ROOT / "scripts/data/kb_questions.jsonl"
SECONDS = r"(\d+(?:\.\d+)?) s after the process started"


# ---- one start of the server -----------------------------------------------------------
class Serve:
    """`supportbot serve` started now in `home`, with `env` on top of a clean environment."""

    def __init__(self, env: dict, home: Path, cache: Path, log_path: Path, *, ui: bool):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
        full.update(SUPPORTBOT_HOME=str(self.home), SUPPORTBOT_HOST="127.0.0.1", SUPPORTBOT_PORT=str(self.port),
                    SUPPORTBOT_MODEL_CACHE=str(cache), SUPPORTBOT_RATE_LIMIT_PER_MINUTE="0",
                    SUPPORTBOT_CHAT_GENERATE_LANGUAGES="en", GRADIO_ANALYTICS_ENABLED="False",
                    PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])), **env)
        exe = Path(sys.executable).with_name("supportbot")
        command = [str(exe), "serve"] if exe.exists() else [sys.executable, "-m", "app.cli", "serve"]
        self.log_path = log_path
        self.log = log_path.open("w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(command + ([] if ui else ["--no-ui"]), cwd=self.home, env=full,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def since_start(self) -> float:
        return time.monotonic() - self.started

    def wait_ready(self, timeout_s: float) -> float:
        """Seconds from the start to the first 200 from /healthz; SystemExit naming the log if none."""
        import httpx

        deadline = self.started + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.close()
                raise SystemExit(f"the server exited with {self.proc.returncode}; its log: {self.log_path}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self.since_start()
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.close()
        raise SystemExit(f"the server did not start in {timeout_s:.0f} s; its log: {self.log_path}")

    def peak_rss_mib(self) -> dict:
        """VmHWM of the server process and of its children (recursively), in MiB."""
        children = sum(_vm_hwm_kib(pid) for pid in _descendants(self.proc.pid))
        server = _vm_hwm_kib(self.proc.pid)
        return {"server": round(server / 1024, 1), "children": round(children / 1024, 1),
                "total": round((server + children) / 1024, 1)}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _vm_hwm_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(found.group(1)) if found else 0


def _descendants(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            out += [child, *_descendants(child)]
    return out


def server_log_times(text: str) -> dict:
    """What app/startup.py logged: models ready, of which converting, first answers (s)."""
    out = {}
    ready = re.search(f"models ready {SECONDS}(?: \\((\\d+) s of it converting)?", text)
    if ready:
        out["models_ready_s"] = float(ready.group(1))
        out["converting_s"] = float(ready.group(2) or 0)
    for key, what in (("first_sentiment_s", "sentiment answer"), ("first_chat_s", "chat reply")):
        found = re.search(f"first {what} sent {SECONDS}", text)
        if found:
            out[key] = float(found.group(1))
    return out


# ---- what is sent ----------------------------------------------------------------------
def chat_turn(client, question: str) -> float:
    t = time.perf_counter()
    r = client.post("/v1/chat/completions", json={"model": "supportbot",
                                                  "messages": [{"role": "user", "content": question}]})
    if r.status_code != 200:
        raise SystemExit(f"chat turn {question!r}: {r.status_code} {r.text[:300]}")
    return time.perf_counter() - t


def sentiment_texts(n: int) -> list[str]:
    """n questions, English and Chinese alternately, the same in every run."""
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_lang = {lang: [r["question"] for r in rows if r["language"] == lang] for lang in ("en", "zh")}
    return [by_lang[("en", "zh")[i % 2]][(i // 2) % len(by_lang[("en", "zh")[i % 2]])] for i in range(n)]


def workload(client, args) -> dict:
    texts = sentiment_texts(args.texts)
    t = time.perf_counter()
    for i in range(0, len(texts), args.request_size):
        r = client.post("/v1/sentiment", json={"texts": texts[i:i + args.request_size]})
        if r.status_code != 200:
            raise SystemExit(f"/v1/sentiment: {r.status_code} {r.text[:300]}")
    sentiment_s = time.perf_counter() - t
    questions = [CHAT_QUESTIONS[i % len(CHAT_QUESTIONS)] for i in range(args.chat_turns)]
    turns = [{"question": q, "language": "zh" if i % 2 else "en"} for i, q in enumerate(questions)]
    for turn in turns:
        turn["s"] = round(chat_turn(client, turn["question"]), 3)
    out = {"sentiment_texts": len(texts), "sentiment_s": round(sentiment_s, 3),
           "texts_per_s": round(len(texts) / sentiment_s, 1), "chat_turns": turns}
    for lang in ("en", "zh"):
        times = [t["s"] for t in turns if t["language"] == lang]
        if times:
            out[f"chat_median_s_{lang}"] = round(statistics.median(times), 3)
    return out


def one_start(name: str, start: str, env: dict, home: Path, cache: Path, args) -> dict:
    """One start of one configuration: the first answers, the workload, the peak memory."""
    import httpx

    print(f"{name}, {start} start (model cache {cache})...", flush=True)
    server = Serve(env, home, cache, args.log_dir / f"serve-{name}-{start}.log", ui=not args.no_ui)
    try:
        out = {"ready_s": round(server.wait_ready(args.timeout), 2)}
        with httpx.Client(base_url=server.url, timeout=args.timeout) as client:
            r = client.post("/v1/sentiment", json={"texts": FIRST_TEXTS})
            if r.status_code != 200:
                raise SystemExit(f"/v1/sentiment: {r.status_code} {r.text[:300]}")
            out["first_sentiment_s"] = round(server.since_start(), 2)
            chat_turn(client, FIRST_QUESTION)
            out["first_chat_s"] = round(server.since_start(), 2)
            out["workload"] = workload(client, args)
        out["peak_rss_mib"] = server.peak_rss_mib()
    finally:
        server.close()
    out["server_log"] = server_log_times(server.log_path.read_text(encoding="utf-8", errors="replace"))
    out["model_cache_mib"] = round(sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / 2**20, 1)
    print(f"  {json.dumps(out, ensure_ascii=False)}", flush=True)
    return out


def run_config(name: str, args) -> dict:
    env = CONFIGS[name]
    result = {"env": env}
    cache = args.model_cache
    fresh = "cold" in args.starts
    args.work_dir.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix=f"bench-serve-home-{name}-", dir=args.work_dir))
    if fresh:
        cache = Path(tempfile.mkdtemp(prefix=f"bench-serve-cache-{name}-", dir=args.work_dir))
    try:
        for start in STARTS:
            if start in args.starts:
                result[start] = one_start(name, start, env, home, cache, args)
                result[start]["model_cache"] = ("empty" if start == "cold" else
                                                "the cold start's" if fresh else str(cache))
    finally:
        shutil.rmtree(home, ignore_errors=True)
        if fresh and not args.keep:
            shutil.rmtree(cache, ignore_errors=True)
    return result


# ---- report ----------------------------------------------------------------------------
def machine() -> dict:
    versions = {}
    for dist in ("torch", "transformers", "llama_cpp_python", "gradio", "uvicorn"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(), **versions,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_average_at_start": os.getloadavg()}


def print_table(result: dict) -> None:
    print("\n== supportbot serve: seconds after the process started; peak memory (MiB) ==")
    head = (f"{'config':<8}{'start':<6}{'ready':>7}{'1st sent.':>10}{'1st chat':>9}{'convert':>8}"
            f"{'texts/s':>9}{'chat en':>8}{'chat zh':>8}{'peak RSS':>9}{'cache':>8}")
    print(head)
    for name, config in result["configs"].items():
        for start in STARTS:
            s = config.get(start)
            if not s:
                continue
            w = s["workload"]
            conv = s["server_log"].get("converting_s")
            print(f"{name:<8}{start:<6}{s['ready_s']:>7.1f}{s['first_sentiment_s']:>10.1f}{s['first_chat_s']:>9.1f}"
                  f"{'-' if conv is None else f'{conv:.0f}':>8}{w['texts_per_s']:>9.1f}"
                  f"{w.get('chat_median_s_en', float('nan')):>8.2f}{w.get('chat_median_s_zh', float('nan')):>8.2f}"
                  f"{s['peak_rss_mib']['total']:>9.0f}{s['model_cache_mib']:>8.0f}")
    print("(convert: of the seconds to ready, converting packaged models, from the server's log; chat: median "
          "seconds of a turn; cache: the model cache on disk, MiB)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="before,after", help="comma list: before, after (in that order)")
    ap.add_argument("--starts", default="cold,warm", help="comma list: cold (an empty model cache), warm")
    ap.add_argument("--texts", type=int, default=200, help="sentiment texts of the workload")
    ap.add_argument("--request-size", type=int, default=32, help="texts per /v1/sentiment request")
    ap.add_argument("--chat-turns", type=int, default=6, help="customer turns of the workload (English, Chinese, ...)")
    ap.add_argument("--quick", action="store_true", help="a short workload: 64 texts, 2 chat turns")
    ap.add_argument("--no-ui", action="store_true", help="serve the API alone (default: the UI too, as `make run`)")
    ap.add_argument("--model-cache", type=Path, default=ROOT / "var/models",
                    help="the warm start's model cache when there is no cold start")
    ap.add_argument("--work-dir", type=Path, default=ROOT / "var/bench", help="where the homes and model caches go")
    ap.add_argument("--keep", action="store_true", help="keep the cold starts' model caches")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds a start or a request may take")
    ap.add_argument("--log-dir", type=Path, default=ROOT / "runs/bench-serve-logs", help="the servers' logs")
    ap.add_argument("--json", type=Path, default=ROOT / "runs/bench-serve.json")
    args = ap.parse_args()
    args.configs = [c for c in CONFIGS if c in args.configs.split(",")]
    args.starts = [s for s in STARTS if s in args.starts.split(",")]
    if not args.configs or not args.starts:
        raise SystemExit("--configs: before and/or after; --starts: cold and/or warm")
    if args.quick:
        args.texts, args.chat_turns = 64, 2
    args.log_dir.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    print(f"machine: {result['machine']}", flush=True)
    result["configs"] = {name: run_config(name, args) for name in args.configs}
    print_table(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
