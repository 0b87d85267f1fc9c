"""Chat speed: a customer turn over HTTP vs the chat engine's own prefill and decoding.

    python scripts/bench_chat.py                       # both engines, the full run (README numbers)
    python scripts/bench_chat.py --engine llama_cpp    # one engine (torch | llama_cpp)
    python scripts/bench_chat.py --repeats 1 --max-tokens 24 --no-unbatched   # a quick check

For each engine (SUPPORTBOT_CHAT_ENGINE) the server is the real `supportbot serve` (a
subprocess on loopback, fresh home, the shipped models: sentiment, intent, embeddings +
demo knowledge base, chat-bitext), English generation on (SUPPORTBOT_CHAT_GENERATE_LANGUAGES=en:
the default answers from the articles alone), rate limiting off, UI off. The turn is POST
/v1/chat/completions, model "supportbot", stream=true, a new conversation each time,
greedy, --max-tokens. The baseline is the same chat model in this process as a user of
that engine would run it, on the exact prompt the server built: the system message with
the article the server cited plus the question (rebuilt here with bot.prompting; whether
the baseline's greedy reply equals the server's is reported). torch: adapter merged, fp32,
`model.generate`. llama_cpp: `llama_cpp.Llama` on the same merged GGUF file the server
serves (bot.gguf_merge), same threads and flash attention, `Llama.generate`. The
baseline runs only while no server is up.

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
5. full turn: the same question with the server's own reply limit (no max_tokens in
   the request; SUPPORTBOT_CHAT_MAX_TOKENS, 160), the whole turn over HTTP; median.

Prints a table per engine and writes --json ("engines": one entry per engine; the
top-level keys repeat the first engine's, as bench_report.py read them before).
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


ENGINES = ("torch", "llama_cpp")


def Server(*, engine: str, batch_requests: int, log_path: Path) -> ServeProcess:
    """`supportbot serve` in a subprocess on a free loopback port, with a fresh home."""
    return ServeProcess(log_path, prefix="bench-chat-", env={
        "SUPPORTBOT_CHAT_BATCH_REQUESTS": str(batch_requests), "SUPPORTBOT_CHAT_ENGINE": engine,
        "SUPPORTBOT_CHAT_GENERATE_LANGUAGES": "en"})


def turn(url: str, question: str, max_tokens: int | None) -> dict:
    """One streamed customer turn in a new conversation: times and the reply (max_tokens
    None: the server's own limit)."""
    import httpx

    body = {"model": "supportbot", "stream": True, "messages": [{"role": "user", "content": question}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
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

    def close(self) -> None:
        self.gen.close()


class LlamaBaseline(Baseline):
    """The chat model on llama.cpp in this process, as a user of llama-cpp-python runs it:
    `Llama` on the GGUF file the server serves (the adapter merged by bot.gguf_merge),
    the whole prompt read in one batch, greedy `generate`."""

    def __init__(self):
        from llama_cpp import Llama

        from bot.knowledge import DEMO_KB_DIR, read_article_files
        from bot.llama_cpp_engine import LlamaCppGenerator
        from core.config import settings_with

        settings = settings_with(model_cache=str(ROOT / "var" / "models"))
        # the server's prompt rendering and tokenizer (one slot), and the file it serves
        self.gen = LlamaCppGenerator.load(settings.chat_model, settings.model_cache_dir, slots=1)
        threads = self.gen.batcher.threads
        self.llm = Llama(model_path=self.gen.batcher.model_path, n_ctx=2048, n_batch=512, n_threads=threads,
                         n_threads_batch=threads, flash_attn=self.gen.batcher.flash_attn, verbose=False)
        self.articles = {a.id: a for a in read_article_files([DEMO_KB_DIR])}
        self.settings = settings

    def measure(self, messages: list[dict], max_tokens: int) -> dict:
        from llama_cpp import llama_vocab_is_eog

        prompt = self.gen.encode(messages)
        self.llm.reset()
        t = time.perf_counter()
        self.llm.eval(prompt)  # the prompt in one batch, next-token logits
        prefill = time.perf_counter() - t
        self.llm.reset()
        tokens, stamps = [], []
        t = time.perf_counter()
        for token in self.llm.generate(prompt, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            if llama_vocab_is_eog(self.gen.batcher.vocab, token):
                break
            tokens.append(token)
            stamps.append(time.perf_counter())
            if len(tokens) >= max_tokens:
                break
        full = stamps[-1] - t if stamps else 0.0
        text = self.llm.detokenize(tokens).decode("utf-8", errors="replace")
        n = len(tokens)
        return {"prompt_tokens": len(prompt), "prefill_s": prefill, "generate_s": full, "tokens": n,
                "tokens_per_s": (n - 1) / (stamps[-1] - stamps[0]) if n > 1 else 0.0, "text": text}

    def tokens(self, text: str) -> int:
        return len(self.gen.batcher.tokenize(text))

    def close(self) -> None:
        self.llm.close()
        self.gen.close()


def pipeline_steps(question: str, repeats: int) -> dict:
    """In-process time of the steps before generation, as the server's runtime sets them
    up (micro-batched sentiment, intent, the demo knowledge base)."""
    from core.config import settings_with
    from bot.runtime import Runtime

    home = tempfile.mkdtemp(prefix="bench-chat-steps-")
    try:
        runtime = Runtime.start(settings_with(home=home, model_cache=str(ROOT / "var" / "models"), ui=False))
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


def print_table(engine: str, res: dict) -> None:
    b, h, c, f = res["baseline"], res["http"], res["concurrency"], res["full_turn"]
    raw = "raw generate" if engine == "torch" else "raw llama.cpp"
    rows = [
        ("TTFT over HTTP vs prefill (s)", h["ttft_s"], b["prefill_s"], h["ttft_s"] / b["prefill_s"], "<= 1.2x"),
        (f"tokens/s streamed vs {raw}", h["tokens_per_s"], b["tokens_per_s"],
         h["tokens_per_s"] / b["tokens_per_s"], ">= 0.9x"),
        (f"turn over HTTP vs {raw} (s)", h["turn_s"], b["generate_s"], h["turn_s"] / b["generate_s"], ""),
        (f"{c['conversations']} conversations vs 1 (tokens/s)", c["batched"]["tokens_per_s"], c["one_tokens_per_s"],
         c["batched"]["tokens_per_s"] / c["one_tokens_per_s"], ">= 2x"),
    ]
    if c.get("unbatched"):
        u = c["unbatched"]
        rows.append(("  same, batching off (tokens/s)", u["tokens_per_s"], u["one_tokens_per_s"],
                     u["tokens_per_s"] / u["one_tokens_per_s"], ""))
    print(f"\n[{engine}]\n{'measure':<40} {'ours':>9} {'baseline':>9} {'ratio':>7}  target")
    for name, ours, base, ratio, target in rows:
        print(f"{name:<40} {ours:>9.3f} {base:>9.3f} {ratio:>7.2f}  {target}")
    print(f"full English turn, server's reply limit: median {f['turn_s']:.2f} s ({f['tokens']:.0f} tokens, "
          f"TTFT {f['ttft_s']:.2f} s; target <= 1.5 s)")
    p = res["pipeline"]
    print(f"pipeline share of a turn: {p['share']:.1%} (target <= 15%); in-process sentiment {p['sentiment_s'] * 1000:.1f} ms,"
          f" intent {p['intent_s'] * 1000:.1f} ms, retrieval {p['retrieval_s'] * 1000:.1f} ms")
    print(f"prompt {b['prompt_tokens']} tokens, reply {h['tokens']:.0f} tokens; baseline reply equals the server's: "
          f"{res['same_reply']}")


def full_turns(url: str, args, count) -> dict:
    rows = []
    for i in range(args.repeats + 1):
        r = turn(url, QUESTION, None)
        if i:
            rows.append({"turn_s": r["turn_s"], "ttft_s": r["ttft_s"], "tokens": count(r["text"])})
    return median_of(rows, rows[0].keys())


def run_engine(engine: str, args) -> dict:
    """Every measurement of one engine: server first, then the baseline with no server up."""
    print(f"[{engine}] starting the server ...", flush=True)
    baseline = LlamaBaseline() if engine == "llama_cpp" else Baseline()
    server = Server(engine=engine, batch_requests=args.batch_requests,
                    log_path=args.log_dir / f"bench-chat-server-{engine}.log")
    try:
        print(f"[{engine}] one conversation over HTTP ...", flush=True)
        http = single(server.url, baseline, args)
        print(f"[{engine}] {args.conversations} conversations at once ...", flush=True)
        batched = concurrent(server.url, args.conversations, args, baseline.tokens)
        one_rate = one_conversation_rate(server.url, args, baseline.tokens)
        print(f"[{engine}] full turns ...", flush=True)
        full = full_turns(server.url, args, baseline.tokens)
    finally:
        server.close()
    served = http.pop("served")
    messages = baseline.prompt(QUESTION, served)
    print(f"[{engine}] baseline: prefill and decoding on the same prompt ...", flush=True)
    rows = [baseline.measure(messages, args.max_tokens) for _ in range(args.repeats + 1)][1:]
    base = {**median_of(rows, ["prefill_s", "generate_s", "tokens", "tokens_per_s"]),
            "prompt_tokens": rows[0]["prompt_tokens"], "reply": rows[0]["text"]}
    # The pipeline's share: everything in the turn that is not generating this reply.
    share = max(0.0, http["turn_s"] - base["generate_s"]) / http["turn_s"]
    concurrency = {"conversations": args.conversations, "batched": batched, "one_tokens_per_s": one_rate}
    if not args.no_unbatched:
        print(f"[{engine}] again with batching off ...", flush=True)
        server = Server(engine=engine, batch_requests=1, log_path=args.log_dir / f"bench-chat-server-{engine}-1.log")
        try:
            unbatched = concurrent(server.url, args.conversations, args, baseline.tokens)
            unbatched["one_tokens_per_s"] = one_conversation_rate(server.url, args, baseline.tokens)
        finally:
            server.close()
        concurrency["unbatched"] = unbatched
    baseline.close()
    return {"engine": engine, "baseline": base, "http": http, "full_turn": full,
            "same_reply": http["reply"].strip() == base["reply"].strip(),
            "pipeline": {"share": share}, "concurrency": concurrency,
            "ratios": {"ttft_over_prefill": http["ttft_s"] / base["prefill_s"],
                       "streamed_over_raw_tokens_per_s": http["tokens_per_s"] / base["tokens_per_s"],
                       "pipeline_share": share,
                       "concurrent_over_one": batched["tokens_per_s"] / one_rate}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", default="llama_cpp,torch", help="comma list of: " + ", ".join(ENGINES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--conversations", type=int, default=4)
    ap.add_argument("--batch-requests", type=int, default=8, help="SUPPORTBOT_CHAT_BATCH_REQUESTS of the server")
    ap.add_argument("--no-unbatched", action="store_true", help="skip the server with batching off")
    ap.add_argument("--json", type=Path, default=ROOT / "runs" / "bench-chat.json")
    ap.add_argument("--log-dir", type=Path, default=ROOT / "runs")
    args = ap.parse_args()
    engines = [e.strip() for e in args.engine.split(",") if e.strip()]
    if not engines or set(engines) - set(ENGINES):
        ap.error(f"--engine: a comma list of {', '.join(ENGINES)}")
    args.log_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = {engine: run_engine(engine, args) for engine in engines}
    # Last: its classifiers run PyTorch on a second thread (micro-batching), and once two
    # threads of a process have run multi-threaded PyTorch, libgomp slows the next
    # `generate` of the baseline 2x (idle) to 25x (loaded machine), README "Performance".
    steps = pipeline_steps(QUESTION, max(3, args.repeats))
    for res in results.values():
        res["pipeline"].update(steps)
    first = results[engines[0]]
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "model": "chat-bitext",
        "question": QUESTION, "max_tokens": args.max_tokens, "repeats": args.repeats,
        **first, "engines": results, "wall_s": time.monotonic() - started,
    }
    for engine, res in results.items():
        print_table(engine, res)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"wrote {args.json} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
