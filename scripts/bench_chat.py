"""Chat speed: a customer turn over HTTP vs the chat model's own prefill and `generate`.

    python scripts/bench_chat.py                       # the full run (README numbers)
    python scripts/bench_chat.py --repeats 1 --max-tokens 24 --no-unbatched   # a quick check

The server is the real `supportbot serve` (a subprocess on loopback, fresh home, the
shipped models: sentiment, intent, embeddings + demo knowledge base, chat-bitext), rate
limiting off, UI off. The turn is POST /v1/chat/completions, model "supportbot",
stream=true, a new conversation each time, greedy, --max-tokens. The baseline is the same
chat model (adapter merged, fp32) loaded in this process, run on the exact prompt the
server built: the system message with the article the server cited plus the question
(rebuilt here with bot.prompting; the baseline's greedy reply must equal the server's,
which is checked and reported). The baseline runs only while the server is idle.

Measured (median of --repeats after a warm-up):
1. prefill: one forward pass of the model over the prompt, next-token logits only (as
   `generate` runs it).
   TTFT over HTTP: request sent -> first streamed text; target <= 1.2 x prefill.
2. tokens/s: streamed, (tokens - 1) / (last piece - first piece); raw: `model.generate`
   with the same settings, (tokens - 1) / (time of the reply - time of a 1-token reply);
   target streamed >= 0.9 x raw.
3. pipeline share: (turn over HTTP - raw generate of the same reply) / turn over HTTP:
   sentiment, intent, retrieval, storage and HTTP; target <= 15%. The in-process times of
   sentiment + intent + retrieval on the question are reported beside it.
4. concurrency: --conversations turns sent at once (each its own conversation and
   connection, different questions) -> total tokens / wall time, vs one conversation's
   tokens / its turn time; target >= 1.5x. Also against a second server with continuous
   batching off (SUPPORTBOT_CHAT_BATCH_REQUESTS=1), unless --no-unbatched.

Prints a table and writes --json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import ServeProcess, cpu_name  # noqa: E402

QUESTION = "How many days do I have to send something back?"
CONCURRENT_QUESTIONS = [
    "How long does standard shipping take?",
    "How do I reset my password?",
    "Can I change the delivery address of my order?",
    "How do I cancel my subscription?",
    "What payment methods do you accept?",
    "My package arrived damaged, what should I do?",
    "How do I get an invoice for my order?",
    "Do you ship internationally?",
]


def Server(*, batch_requests: int, log_path: Path) -> ServeProcess:
    """`supportbot serve` in a subprocess on a free loopback port, with a fresh home."""
    return ServeProcess(log_path, prefix="bench-chat-", env={"SUPPORTBOT_CHAT_BATCH_REQUESTS": str(batch_requests)})


def turn(url: str, question: str, max_tokens: int) -> dict:
    """One streamed customer turn in a new conversation: times and the reply."""
    import httpx

    body = {"model": "supportbot", "stream": True, "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": question}]}
    pieces, times, extras = [], [], {}
    with httpx.Client(base_url=url, timeout=300) as client:
        sent = time.perf_counter()
        with client.stream("POST", "/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                raise SystemExit(f"/v1/chat/completions answered {r.status_code}: {r.read()[:300]!r}")
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    raise SystemExit(f"the turn failed: {event['error']}")
                content = event["choices"][0]["delta"].get("content")
                if content:
                    pieces.append(content)
                    times.append(time.perf_counter())
                if event["choices"][0].get("finish_reason"):
                    extras = {k: event.get(k) for k in ("sources", "sentiment", "conversation_id")}
        done = time.perf_counter()
    if not times:
        raise SystemExit(f"no text streamed for {question!r}")
    return {"text": "".join(pieces), "sent": sent, "first": times[0], "last": times[-1], "done": done,
            "ttft_s": times[0] - sent, "turn_s": done - sent, **extras}


class Baseline:
    """The chat model in this process, as a user would run it: merged adapter, fp32, generate."""

    def __init__(self):
        from core.config import settings_with
        from bot.generation import LocalGenerator
        from bot.knowledge import DEMO_KB_DIR, read_article_files

        settings = settings_with(model_cache=str(ROOT / "var" / "models"))
        self.gen = LocalGenerator.load(settings.chat_model, settings.model_cache_dir, batch_requests=1)
        self.articles = {a.id: a for a in read_article_files([DEMO_KB_DIR])}
        self.settings = settings

    def prompt(self, question: str, served: dict) -> list[dict]:
        """The messages the server's dialogue built: its cited article, the customer's mood."""
        from bot import prompting
        from bot.retrieval import Hit

        a = self.articles[served["sources"][0]["id"]]
        upset = (served.get("sentiment") or {}).get("label") == "negative"
        system = prompting.system_message([Hit(a.id, a.title, a.body, a.language, 1.0)], language="en", upset=upset)
        return [{"role": "system", "content": system}, {"role": "user", "content": question}]

    def measure(self, messages: list[dict], max_tokens: int) -> dict:
        import torch

        enc = self.gen.encode(messages)
        common = dict(do_sample=False, temperature=None, top_p=None, top_k=None,
                      pad_token_id=self.gen.tokenizer.pad_token_id)
        with torch.inference_mode():
            t = time.perf_counter()
            self.gen.model(**enc, logits_to_keep=1)  # as generate's prefill: the next token's logits only
            prefill = time.perf_counter() - t
            t = time.perf_counter()
            self.gen.model.generate(**enc, max_new_tokens=1, **common)
            one = time.perf_counter() - t
            t = time.perf_counter()
            out = self.gen.model.generate(**enc, max_new_tokens=max_tokens, **common)
            full = time.perf_counter() - t
        new = out[0, enc["input_ids"].shape[1]:]
        text = self.gen.tokenizer.decode(new, skip_special_tokens=True)
        n = self.tokens(text)
        return {"prompt_tokens": int(enc["input_ids"].shape[1]), "prefill_s": prefill, "generate_s": full,
                "tokens": n, "tokens_per_s": (n - 1) / (full - one) if n > 1 and full > one else 0.0, "text": text}

    def tokens(self, text: str) -> int:
        return len(self.gen.tokenizer(text, add_special_tokens=False)["input_ids"])

    def steps(self, question: str, repeats: int) -> dict:
        """In-process time of the steps before generation, as the server's runtime sets
        them up (micro-batched sentiment, intent, the demo knowledge base)."""
        from core.config import settings_with
        from bot.runtime import Runtime

        home = tempfile.mkdtemp(prefix="bench-chat-steps-")
        try:
            runtime = Runtime.start(settings_with(home=home, model_cache=self.settings.model_cache_dir, ui=False))
            runtime.import_demo_kb_if_empty()
            sentiment, intent, index = runtime.sentiment, runtime.intent, runtime.knowledge()
            rows = []
            for i in range(repeats + 1):
                t0 = time.perf_counter()
                sentiment.classify([question])
                t1 = time.perf_counter()
                label = intent.classify([question])[0] if intent is not None else None
                t2 = time.perf_counter()
                index.search(question, language="en", k=3, intent=label)
                t3 = time.perf_counter()
                if i:
                    rows.append({"sentiment_s": t1 - t0, "intent_s": t2 - t1, "retrieval_s": t3 - t2})
            runtime.close()
        finally:
            shutil.rmtree(home, ignore_errors=True)
        return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def median_of(rows: list[dict], keys) -> dict:
    return {k: statistics.median(r[k] for r in rows) for k in keys}


def streamed_rate(r: dict, count) -> tuple[int, float]:
    n = count(r["text"])
    span = r["last"] - r["first"]
    return n, ((n - 1) / span if n > 1 and span > 0 else 0.0)


def single(url: str, baseline: Baseline, args) -> dict:
    rows, served = [], None
    for i in range(args.repeats + 1):
        r = turn(url, QUESTION, args.max_tokens)
        n, rate = streamed_rate(r, baseline.tokens)
        served = r
        if i:
            rows.append({"ttft_s": r["ttft_s"], "turn_s": r["turn_s"], "tokens": n, "tokens_per_s": rate})
    return {**median_of(rows, rows[0].keys()), "reply": served["text"], "served": served}


def concurrent(url: str, n: int, args, count) -> dict:
    """n turns at once, each its own conversation and connection; total tokens / wall."""
    rows = []
    for i in range(args.repeats + 1):
        results: list[dict] = [None] * n
        barrier = threading.Barrier(n)

        def run(k: int) -> None:
            barrier.wait()
            results[k] = turn(url, CONCURRENT_QUESTIONS[k % len(CONCURRENT_QUESTIONS)], args.max_tokens)

        threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = max(r["done"] for r in results) - min(r["sent"] for r in results)
        tokens = sum(count(r["text"]) for r in results)
        if i:
            rows.append({"wall_s": wall, "tokens": tokens, "tokens_per_s": tokens / wall,
                         "ttft_p50_s": statistics.median(r["ttft_s"] for r in results)})
    return median_of(rows, rows[0].keys())


def one_conversation_rate(url: str, args, count) -> float:
    """Tokens / turn time of one conversation alone, same questions as the concurrent run."""
    return concurrent(url, 1, args, count)["tokens_per_s"]


def machine() -> dict:
    import torch

    return {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "load_average_at_start": list(os.getloadavg())}


def print_table(res: dict) -> None:
    b, h, c = res["baseline"], res["http"], res["concurrency"]
    rows = [
        ("TTFT over HTTP vs prefill (s)", h["ttft_s"], b["prefill_s"], h["ttft_s"] / b["prefill_s"], "<= 1.2x"),
        ("tokens/s streamed vs raw generate", h["tokens_per_s"], b["tokens_per_s"],
         h["tokens_per_s"] / b["tokens_per_s"], ">= 0.9x"),
        ("turn over HTTP vs raw generate (s)", h["turn_s"], b["generate_s"], h["turn_s"] / b["generate_s"], ""),
        (f"{c['conversations']} conversations vs 1 (tokens/s)", c["batched"]["tokens_per_s"], c["one_tokens_per_s"],
         c["batched"]["tokens_per_s"] / c["one_tokens_per_s"], ">= 1.5x"),
    ]
    if c.get("unbatched"):
        u = c["unbatched"]
        rows.append(("  same, batching off (tokens/s)", u["tokens_per_s"], u["one_tokens_per_s"],
                     u["tokens_per_s"] / u["one_tokens_per_s"], ""))
    print(f"{'measure':<40} {'ours':>9} {'baseline':>9} {'ratio':>7}  target")
    for name, ours, base, ratio, target in rows:
        print(f"{name:<40} {ours:>9.3f} {base:>9.3f} {ratio:>7.2f}  {target}")
    p = res["pipeline"]
    print(f"pipeline share of a turn: {p['share']:.1%} (target <= 15%); in-process sentiment {p['sentiment_s'] * 1000:.1f} ms,"
          f" intent {p['intent_s'] * 1000:.1f} ms, retrieval {p['retrieval_s'] * 1000:.1f} ms")
    print(f"prompt {b['prompt_tokens']} tokens, reply {h['tokens']:.0f} tokens; baseline reply equals the server's: "
          f"{res['same_reply']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--conversations", type=int, default=4)
    ap.add_argument("--batch-requests", type=int, default=8, help="SUPPORTBOT_CHAT_BATCH_REQUESTS of the server")
    ap.add_argument("--no-unbatched", action="store_true", help="skip the server with batching off")
    ap.add_argument("--json", type=Path, default=ROOT / "runs" / "bench-chat.json")
    ap.add_argument("--log-dir", type=Path, default=ROOT / "runs")
    args = ap.parse_args()
    args.log_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    print("loading the baseline model ...", flush=True)
    baseline = Baseline()
    print("starting the server ...", flush=True)
    server = Server(batch_requests=args.batch_requests, log_path=args.log_dir / "bench-chat-server.log")
    try:
        print("one conversation over HTTP ...", flush=True)
        http = single(server.url, baseline, args)
        print(f"{args.conversations} conversations at once ...", flush=True)
        batched = concurrent(server.url, args.conversations, args, baseline.tokens)
        one_rate = one_conversation_rate(server.url, args, baseline.tokens)
    finally:
        server.close()
    served = http.pop("served")
    messages = baseline.prompt(QUESTION, served)
    print("baseline: prefill and generate on the same prompt ...", flush=True)
    rows = [baseline.measure(messages, args.max_tokens) for _ in range(args.repeats + 1)][1:]
    base = {**median_of(rows, ["prefill_s", "generate_s", "tokens", "tokens_per_s"]),
            "prompt_tokens": rows[0]["prompt_tokens"], "reply": rows[0]["text"]}
    steps = baseline.steps(QUESTION, max(3, args.repeats))
    # The pipeline's share: everything in the turn that is not generating this reply.
    share = max(0.0, http["turn_s"] - base["generate_s"]) / http["turn_s"]
    concurrency = {"conversations": args.conversations, "batched": batched, "one_tokens_per_s": one_rate}
    if not args.no_unbatched:
        print("again with continuous batching off ...", flush=True)
        server = Server(batch_requests=1, log_path=args.log_dir / "bench-chat-server-unbatched.log")
        try:
            unbatched = concurrent(server.url, args.conversations, args, baseline.tokens)
            unbatched["one_tokens_per_s"] = one_conversation_rate(server.url, args, baseline.tokens)
        finally:
            server.close()
        concurrency["unbatched"] = unbatched
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "model": baseline.settings.chat_model,
        "question": QUESTION, "max_tokens": args.max_tokens, "repeats": args.repeats,
        "baseline": base, "http": http, "same_reply": http["reply"].strip() == base["reply"].strip(),
        "pipeline": {"share": share, **steps}, "concurrency": concurrency,
        "ratios": {"ttft_over_prefill": http["ttft_s"] / base["prefill_s"],
                   "streamed_over_raw_tokens_per_s": http["tokens_per_s"] / base["tokens_per_s"],
                   "pipeline_share": share,
                   "concurrent_over_one": batched["tokens_per_s"] / one_rate},
        "wall_s": time.monotonic() - started,
    }
    print_table(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"wrote {args.json} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
