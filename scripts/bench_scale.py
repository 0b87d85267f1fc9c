"""Scale curves: how time and memory grow with batch size, text length, conversation length
and knowledge-base size.

    python scripts/bench_scale.py                          # the full run (README numbers and docs/scale-*.png)
    python scripts/bench_scale.py --quick                  # a few points, few repeats: a check
    python scripts/bench_scale.py --only kb --json runs/bench-scale-kb.json

Every model is the configured one, loaded through bot.runtime.Runtime (threads, quantization,
routing as served; micro-batching off: one caller). Each point is the median of --repeats
runs after a warm-up; p99 where a point has many timings. Memory is the peak RSS above
the RSS before the run (sampled every 2 ms, after gc and malloc_trim), or what a built
index keeps. Curves:

1. batch: /v1/sentiment's work (SentimentService.classify) on a fixed set of texts (64
   SST-2 dev sentences; 32 ChnSentiCorp test texts cut to 48 characters) split into batches
   of 1..64: ms per batch, texts/s, peak RSS. Batches above `inference_batch_size` (32)
   run as several forward passes, as served.
2. length: one text per call at 8..256 tokens (SST-2 / ChnSentiCorp text joined and cut to
   that many tokens of the model's tokenizer, special tokens included): ms per text p50/p99.
   The models truncate at their `max_length` (sentiment-en 64, sentiment-zh 128), so the
   cost stops growing there.
3. conversation: one full customer turn (DialogueEngine.stream_turn: sentiment, retrieval
   on the demo KB, the shipped chat model with max_tokens=16, storage) after 0..32 earlier
   exchanges (a Bitext customer message and its reply each). Two settings: as served (the
   last `history_messages`=8 messages go to the model) and the whole history, which
   `prompting.fit_context` cuts to the context budget (chat_context_tokens - max_tokens).
   Prompt tokens, prefill (one forward pass over the prompt), time to first token, turn total.
4. kb: 1k..100k articles: KnowledgeIndex build time and memory, retrieval (`search`, k=3,
   query embedding included) p50/p99 over English and Chinese queries, compared with the
   time the chat model takes for a short (max 32 tokens) grounded reply: PASS when the
   retrieval p50 at the largest size (of the slower language) is under it. Index memory is
   the RSS the built index keeps (the vectors, passed in, are counted apart).
   Articles: the demo KB, Bitext customer-support responses (English; title = the customer
   request) and STC-3 helpdesk replies (Chinese; title = the customer post), 3 English to 1
   Chinese, from --datasets; beyond those, variants that join two articles' sentences and
   name a product code (so the vocabulary keeps growing, as SKUs do). Without the datasets
   the demo KB alone seeds the variants. Queries: 100 Bitext requests not used as articles,
   100 STC-3 test posts (demo KB titles when absent).
   Vectors: --embed articles are embedded with the real MiniLM encoder (their rate is
   reported: import cost per article); the others get a copy of one of those vectors plus
   noise, renormalised. Query time does not depend on the vector values (one (n, 384)
   matrix-vector product), and the query embedding itself is real.

Prints a table, writes --json (with machine info and date) and the PNGs under --plots.
Timings are wall-clock and noisy on a shared machine: compare runs on an idle one.
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import gc
import json
import os
import platform
import random
import re
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

from benchlib import cpu_name, percentile, timed  # noqa: E402

SST2 = ROOT / "data/sentiment/sst2_dev.csv"
CHNSENTICORP = ROOT / "data/sentiment/chnsenticorp_test.csv"
BITEXT = "bitext_customer_support/Bitext_Sample_Customer_Support_Training_Dataset.csv"
STC3_TRAIN, STC3_TEST = "stc3_helpdesk/train_data_cn.json", "stc3_helpdesk/test_data_cn.json"
QUESTION = "How many days do I have to send something back?"  # answered by the demo KB's en-return-policy
# Bitext intents whose requests would hand the conversation to a person: not history material.
HANDOFF_INTENTS = {"contact_human_agent", "complaint"}

FULL = {"batch": [1, 2, 4, 8, 16, 32, 64], "batch_zh": [1, 4, 16, 32],
        "length": [8, 16, 32, 64, 128, 256], "length_zh": [8, 32, 128, 256],
        "conversation": [0, 2, 4, 8, 16, 32], "kb": [1_000, 3_000, 10_000, 30_000, 100_000]}
QUICK = {"batch": [1, 8, 64], "batch_zh": [1, 16], "length": [8, 64, 256], "length_zh": [8, 128],
         "conversation": [0, 4, 16], "kb": [1_000, 10_000]}


# ---- measuring ----------------------------------------------------------------------
def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def settle() -> None:
    """Free what can be freed, so an RSS baseline is not inflated by garbage."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakRSS:
    """`with PeakRSS() as m: ...` then m.peak: the highest RSS above the start, in bytes."""

    def __enter__(self):
        settle()
        self.start = self.peak_abs = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.002):
            self.peak_abs = max(self.peak_abs, rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.end = rss()
        self.peak_abs = max(self.peak_abs, self.end)
        self.peak = self.peak_abs - self.start
        self.kept = self.end - self.start


def mb(n_bytes: float) -> float:
    return n_bytes / 2**20


def machine() -> dict:
    import torch
    import transformers

    cpu = cpu_name()
    with open("/proc/meminfo") as fh:
        mem_gb = int(fh.readline().split()[1]) / 2**20
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_gb, 1), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "transformers": transformers.__version__, "numpy": __import__("numpy").__version__,
            "python": platform.python_version(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_average_at_start": os.getloadavg()}


# ---- data --------------------------------------------------------------------------
def read_csv_texts(path: Path) -> list[str]:
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `python scripts/prepare_sentiment_data.py "
                         "--datasets ../shared/datasets --out data/sentiment`")
    with path.open(encoding="utf-8", newline="") as fh:
        return [r["text"].strip() for r in csv.DictReader(fh) if r["text"].strip()]


def texts_of_length(tokenizer, pool: list[str], n_tokens: int, count: int, joiner: str) -> list[str]:
    """`count` texts of exactly (or nearly: decoding can merge tokens) `n_tokens` tokens,
    special tokens included, cut from the pool's texts joined end to end."""
    special = len(tokenizer("")["input_ids"])
    out = []
    for k in range(count):
        text, i = "", k * 7
        while len(tokenizer(text, add_special_tokens=False)["input_ids"]) < n_tokens:
            text += (joiner if text else "") + pool[i % len(pool)]
            i += 1
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][: max(1, n_tokens - special)]
        out.append(tokenizer.decode(ids, skip_special_tokens=True).strip())
    return out


def read_bitext(datasets: Path) -> list[dict]:
    path = datasets / BITEXT
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    unbrace = re.compile(r"\{\{([^}]*)\}\}")
    return [{"request": r["instruction"].strip(), "response": unbrace.sub(r"\1", r["response"]).strip(),
             "intent": r["intent"]} for r in rows if r["instruction"].strip() and r["response"].strip()]


def read_stc3(path: Path) -> list[tuple[str, str]]:
    """(the customer's first post, the helpdesk's replies) of each STC-3 dialogue."""
    if not path.is_file():
        return []
    out = []
    for d in json.loads(path.read_text(encoding="utf-8")):
        post = " ".join(next((t["utterances"] for t in d["turns"] if t["sender"] == "customer"), [])).strip()
        reply = "".join(u for t in d["turns"] if t["sender"] == "helpdesk" for u in t["utterances"]).strip()
        if post and reply:
            out.append((post, reply))
    return out


def kb_seed(datasets: Path, held_out: int):
    """(English articles, Chinese articles, English queries, Chinese queries)."""
    from bot.knowledge import DEMO_KB_DIR, Article, read_article_files

    demo = read_article_files([DEMO_KB_DIR])
    en = [a for a in demo if a.language == "en"]
    zh = [a for a in demo if a.language == "zh"]
    bitext = read_bitext(datasets)
    random.Random(0).shuffle(bitext)
    queries_en = [r["request"] for r in bitext[:held_out]]
    en += [Article(f"bitext-{i}", r["request"][:120], r["response"], "en", [r["intent"]])
           for i, r in enumerate(bitext[held_out:])]
    zh += [Article(f"stc3-{i}", post[:40], reply, "zh") for i, (post, reply) in enumerate(read_stc3(datasets / STC3_TRAIN))]
    queries_zh = [post[:200] for post, _ in read_stc3(datasets / STC3_TEST)[:held_out]]
    if not queries_en:  # no datasets: the demo KB's own titles
        queries_en = [a.title for a in demo if a.language == "en"]
    if not queries_zh:
        queries_zh = [a.title for a in demo if a.language == "zh"]
    return en, zh, queries_en, queries_zh


_SENTENCES = re.compile(r"[^.!?。！？\n]+[.!?。！？]*")


def kb_articles(en: list, zh: list, n: int) -> list:
    """n articles, 3 English to 1 Chinese: the seed articles first, then variants."""
    from bot.knowledge import Article

    rng = random.Random(1)
    out, used = [], {"en": 0, "zh": 0}
    for i in range(n):
        lang = "zh" if i % 4 == 3 else "en"
        seed = en if lang == "en" else zh
        k = used[lang]
        used[lang] += 1
        if k < len(seed):
            a = seed[k]
            out.append(Article(f"{a.id}", a.title, a.body, a.language, list(a.tags)))
            continue
        a, b = seed[k % len(seed)], seed[rng.randrange(len(seed))]
        extra = _SENTENCES.findall(b.body)[:2]
        code = f"LX-{rng.randrange(10**6):06d}"
        joiner = "" if lang == "zh" else " "
        title = f"{a.title}（{code}）" if lang == "zh" else f"{a.title} ({code})"
        out.append(Article(f"v{i}", title, a.body + joiner + joiner.join(s.strip() for s in extra), lang, list(a.tags)))
    return out


def history_exchanges(datasets: Path, n: int) -> list[tuple[str, str]]:
    """n (customer, bot) exchanges from Bitext, or synthetic ones without it."""
    rows = [r for r in read_bitext(datasets) if r["intent"] not in HANDOFF_INTENTS]
    random.Random(2).shuffle(rows)
    pairs = [(r["request"], r["response"]) for r in rows[:n]]
    while len(pairs) < n:
        i = len(pairs)
        pairs.append((f"I have a question about my order number {1000 + i}, where is it now?",
                      "Thank you for reaching out. Your order is on its way and should arrive within 3 to 5 "
                      "business days. You can follow it in your account under Orders, where the tracking link "
                      "shows each step. Is there anything else I can help you with? " * 2))
    return pairs


# ---- the curves --------------------------------------------------------------------
def curve_batch(runtime, args, points) -> dict:
    service = runtime.sentiment
    sets = {"en": read_csv_texts(SST2)[:64], "zh": [t[:48] for t in read_csv_texts(CHNSENTICORP)[:32]]}
    sizes = {"en": points["batch"], "zh": points["batch_zh"] if not args.no_zh else []}
    out = {}
    for lang, texts in sets.items():
        if not sizes[lang]:
            continue
        service.classify(texts[:8])  # warm-up
        rows = []
        for size in sizes[lang]:
            batches = [texts[i:i + size] for i in range(0, len(texts), size)]
            run = lambda: [service.classify(b) for b in batches]  # noqa: E731
            run()  # warm-up at this shape
            seconds, peak = [], 0
            for _ in range(args.repeats):
                with PeakRSS() as m:
                    seconds.append(timed(run))
                peak = max(peak, m.peak)
            s = statistics.median(seconds)
            rows.append({"batch": size, "ms_per_batch": 1000 * s / len(batches), "texts_per_s": len(texts) / s,
                         "ms_per_text": 1000 * s / len(texts), "peak_rss_mb": mb(peak), "runs_s": seconds})
            print(f"  batch {lang} {size:>3}: {rows[-1]['ms_per_batch']:8.1f} ms/batch {rows[-1]['texts_per_s']:7.1f} "
                  f"texts/s  peak +{rows[-1]['peak_rss_mb']:.0f} MB", flush=True)
        out[lang] = {"model": service._classifier_for(lang).name, "texts": len(texts), "points": rows}
    return out


def curve_length(runtime, args, points) -> dict:
    service = runtime.sentiment
    pools = {"en": (read_csv_texts(SST2), " ", points["length"], 20 if not args.quick else 8),
             "zh": (read_csv_texts(CHNSENTICORP), "", points["length_zh"] if not args.no_zh else [],
                    8 if not args.quick else 4)}
    out = {}
    for lang, (pool, joiner, lengths, count) in pools.items():
        if not lengths:
            continue
        clf = service._classifier_for(lang)
        rows = []
        for n_tokens in lengths:
            texts = texts_of_length(clf.tokenizer, pool, n_tokens, count, joiner)
            actual = statistics.median(len(clf.tokenizer(t)["input_ids"]) for t in texts)
            for t in texts[:3]:
                service.classify([t])  # warm-up
            seconds = []
            with PeakRSS() as m:
                for _ in range(args.repeats):
                    seconds += [timed(lambda t=t: service.classify([t])) for t in texts]
            rows.append({"tokens": n_tokens, "tokens_actual": actual, "tokens_processed": min(actual, clf.max_length),
                         "p50_ms": 1000 * percentile(seconds, 50), "p99_ms": 1000 * percentile(seconds, 99),
                         "peak_rss_mb": mb(m.peak), "timings": len(seconds)})
            print(f"  length {lang} {n_tokens:>3} tok: p50 {rows[-1]['p50_ms']:7.1f} ms  p99 {rows[-1]['p99_ms']:7.1f} ms",
                  flush=True)
        out[lang] = {"model": clf.name, "max_length": clf.max_length, "texts_per_point": count, "points": rows}
    return out


class RecordingGenerator:
    """The real generator, remembering the messages of its last call."""

    def __init__(self, generator):
        self.inner, self.name, self.context_tokens = generator, generator.name, generator.context_tokens
        self.messages: list[dict] = []

    def count_tokens(self, messages):
        return self.inner.count_tokens(messages)

    def stream(self, messages, params):
        self.messages = messages
        return self.inner.stream(messages, params)


def grounded_messages():
    from bot.knowledge import DEMO_KB_DIR, read_article_files
    from bot.prompting import system_message
    from bot.retrieval import Hit

    article = next(a for a in read_article_files([DEMO_KB_DIR]) if a.id == "en-return-policy")
    hit = Hit(article.id, article.title, article.body, "en", 1.0)
    return [{"role": "system", "content": system_message([hit], language="en", upset=False)},
            {"role": "user", "content": QUESTION}]


def prefill_s(gen, messages) -> float:
    """One forward pass over the prompt, with next-token logits only (as generate does)."""
    import torch

    enc = gen.encode(messages)
    with torch.inference_mode():
        return timed(lambda: gen.model(**enc, logits_to_keep=1))


def curve_conversation(runtime, args, points) -> dict:
    from bot.dialogue import DialogueConfig, DialogueEngine, TurnResult
    from bot.generation import GenerationParams

    s = runtime.settings
    runtime.import_demo_kb_if_empty()
    gen = RecordingGenerator(runtime.generator)
    params = GenerationParams(max_tokens=args.turn_tokens, timeout_s=s.chat_timeout_s)
    served = DialogueConfig().history_messages
    budget = gen.context_tokens - params.max_tokens
    exchanges = history_exchanges(args.datasets, max(points["conversation"]))

    def engine(history_messages):
        config = DialogueConfig(answer_threshold=s.answer_threshold, generate_languages=s.generate_languages,
                                max_text_chars=s.max_text_chars, redactor=runtime.redactor,
                                sealer=None, history_messages=history_messages, params=params)
        return DialogueEngine(sessions=runtime.sessions, sentiment=runtime.sentiment, intent=runtime.intent,
                              knowledge=runtime.knowledge, generator=gen, config=config)

    def turn(eng, n):
        history = [(role, text) for c, b in exchanges[:n] for role, text in (("user", c), ("assistant", b))]
        cid = eng.create_conversation(channel="bench", history=history)
        started, first, result = time.perf_counter(), None, None
        for event in eng.stream_turn(cid, QUESTION, params):
            if isinstance(event, TurnResult):
                result = event
            elif first is None:
                first = time.perf_counter()
        total = time.perf_counter() - started
        if result.escalate or result.model_version != gen.name:
            why = result.escalation_reason or result.model_version
            raise SystemExit(f"the turn after {n} exchanges was not generated ({why}): pick other history")
        return first - started, total

    engines = {"served": engine(served), "full": engine(10**6)}
    turn(engines["served"], 0)  # warm-up
    prefill_s(gen.inner, gen.messages)
    out = {"model": gen.name, "context_tokens": gen.context_tokens, "max_tokens": params.max_tokens,
           "budget_tokens": budget, "history_messages_served": served, "series": {}}
    seen: dict[str, dict] = {}
    for name, eng in engines.items():
        rows = []
        for n in points["conversation"]:
            prefill, ttft, total = [], [], []
            with PeakRSS() as m:
                for _ in range(args.repeats):
                    first, whole = turn(eng, n)
                    key = json.dumps(gen.messages)
                    if key in seen:  # the same prompt as the other setting: the same measurement
                        break
                    ttft.append(first)
                    total.append(whole)
                    prefill.append(prefill_s(gen.inner, gen.messages))
            if key in seen:
                rows.append({**seen[key], "exchanges": n})
                continue
            prompt_tokens = gen.count_tokens(gen.messages)
            row = {"exchanges": n, "messages_to_model": len(gen.messages), "prompt_tokens": prompt_tokens,
                   "prefill_s": statistics.median(prefill), "ttft_s": statistics.median(ttft),
                   "turn_s": statistics.median(total), "peak_rss_mb": mb(m.peak)}
            seen[key] = row
            rows.append(row)
            print(f"  conversation {name:<6} {n:>2} exchanges: {prompt_tokens:>5} prompt tok  "
                  f"prefill {row['prefill_s']:.2f} s  TTFT {row['ttft_s']:.2f} s  turn {row['turn_s']:.2f} s", flush=True)
        out["series"][name] = rows
    return out


def reply_time(runtime, args) -> dict:
    """The chat model's time for a short grounded reply (--reply-tokens at most)."""
    from bot.generation import GenerationParams

    gen = runtime.generator
    messages = grounded_messages()
    params = GenerationParams(max_tokens=args.reply_tokens)
    rows = []
    for i in range(args.repeats + 1):
        t, first, text = time.perf_counter(), None, ""
        for piece in gen.stream(messages, params):
            first = first or time.perf_counter()
            text += piece
        end = time.perf_counter()
        if i:  # the first run warms up
            rows.append((first - t, end - t, len(gen.tokenizer(text, add_special_tokens=False)["input_ids"])))
    return {"model": gen.name, "max_tokens": args.reply_tokens, "prompt_tokens": gen.count_tokens(messages),
            "ttft_s": statistics.median(r[0] for r in rows), "reply_s": statistics.median(r[1] for r in rows),
            "tokens": statistics.median(r[2] for r in rows)}


def curve_kb(runtime, args, points) -> dict:
    import numpy as np

    from bot.retrieval import KnowledgeIndex

    sizes = points["kb"]
    en, zh, queries_en, queries_zh = kb_seed(args.datasets, held_out=100)
    queries = [(q, "en") for q in queries_en[:100]] + [(q, "zh") for q in queries_zh[:100]]
    articles = kb_articles(en, zh, max(sizes))
    embedder = runtime.embedder
    n_embed = min(args.embed, len(articles))
    embedder.embed([a.text for a in articles[:16]])  # warm-up
    t = time.perf_counter()
    real = embedder.embed([a.text for a in articles[:n_embed]])
    embed_s = time.perf_counter() - t
    rng = np.random.default_rng(0)
    vectors = np.empty((len(articles), real.shape[1]), dtype=np.float32)
    vectors[:n_embed] = real
    rest = len(articles) - n_embed
    if rest:
        noisy = real[rng.integers(0, n_embed, rest)] + rng.normal(0, 0.05, (rest, real.shape[1])).astype(np.float32)
        vectors[n_embed:] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    print(f"  embedded {n_embed} articles in {embed_s:.1f} s ({n_embed / embed_s:.0f} articles/s); "
          f"{len(en)} English + {len(zh)} Chinese seed articles", flush=True)
    reference = reply_time(runtime, args)
    print(f"  reference: {reference['tokens']:.0f}-token grounded reply {reference['reply_s']:.2f} s "
          f"(TTFT {reference['ttft_s']:.2f} s)", flush=True)

    KnowledgeIndex(articles[:200], vectors[:200], embedder).search(queries[0][0])  # warm-up
    rows = []
    for n in sizes:
        build, index = [], None
        for rep in range(args.build_repeats):
            index = None  # the previous one is freed before the baseline
            with PeakRSS() as m:
                t = time.perf_counter()
                index = KnowledgeIndex(articles[:n], vectors[:n], embedder)
                build.append(time.perf_counter() - t)
                settle()  # build temporaries out: m.kept is what the index keeps
            if rep == 0:
                kept, peak = m.kept, m.peak
        for q, _ in queries[:10]:
            index.search(q)  # warm-up
        times = {"en": [], "zh": []}
        for _ in range(args.repeats):
            for q, lang in queries:
                times[lang].append(timed(lambda q=q: index.search(q, k=3)))
        row = {"articles": n, "build_s": statistics.median(build), "index_mb": mb(kept),
               "vectors_mb": mb(vectors[:n].nbytes), "build_peak_rss_mb": mb(peak),
               "terms": len(index._postings)}
        for lang, ts in times.items():
            row[f"p50_ms_{lang}"] = 1000 * percentile(ts, 50)
            row[f"p99_ms_{lang}"] = 1000 * percentile(ts, 99)
        # The slower language decides (a median over both would fall between two distributions).
        row["p50_ms"] = max(row["p50_ms_en"], row["p50_ms_zh"])
        rows.append(row)
        index = None
        print(f"  kb {n:>7,}: build {row['build_s']:6.2f} s  index +{row['index_mb']:.0f} MB (+{row['vectors_mb']:.0f} MB "
              f"vectors)  p50 en {row['p50_ms_en']:.1f} / zh {row['p50_ms_zh']:.1f} ms  "
              f"p99 en {row['p99_ms_en']:.1f} / zh {row['p99_ms_zh']:.1f} ms", flush=True)
    largest = rows[-1]
    return {"embedded": n_embed, "embed_s": embed_s, "embed_articles_per_s": n_embed / embed_s,
            "seed_articles": {"en": len(en), "zh": len(zh)}, "queries": {"en": len(queries_en[:100]),
                                                                           "zh": len(queries_zh[:100])},
            "reference_reply": reference, "points": rows,
            "check": {"articles": largest["articles"], "retrieval_p50_ms": largest["p50_ms"],
                      "reply_ms": 1000 * reference["reply_s"],
                      "pass": largest["p50_ms"] < 1000 * reference["reply_s"]}}


# ---- plots -------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


COLORS = {"en": "tab:blue", "zh": "tab:red"}


def _log_axes(ax, xs, labels=None, *, base=2, logy=False):
    """Log x with a tick at each measured point (plain numbers, no 2^n), optionally log y."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log", base=base)
    ax.set_xticks(xs, labels or [f"{x:g}" for x in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    if logy:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())


def plot_batch(res: dict, path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for lang, r in res.items():
        x = [p["batch"] for p in r["points"]]
        kw = dict(marker="o", color=COLORS[lang], label=f"{lang}: {r['model']}")
        axes[0].plot(x, [p["ms_per_batch"] for p in r["points"]], **kw)
        axes[1].plot(x, [p["texts_per_s"] for p in r["points"]], **kw)
        axes[2].plot(x, [p["peak_rss_mb"] for p in r["points"]], **kw)
    xs = sorted({p["batch"] for r in res.values() for p in r["points"]})
    for i, (ax, label) in enumerate(zip(axes, ["ms per batch (median)", "texts / s", "peak RSS above start (MB)"])):
        _log_axes(ax, xs, logy=i == 0)
        ax.set_xlabel("batch size (texts per call)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.suptitle("Sentiment: batch size")
    _save(fig, path)


def plot_length(res: dict, path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for lang, r in res.items():
        x = [p["tokens"] for p in r["points"]]
        axes[0].plot(x, [p["p50_ms"] for p in r["points"]], "o-", color=COLORS[lang], label=f"{lang} p50 ({r['model']})")
        axes[0].plot(x, [p["p99_ms"] for p in r["points"]], "o--", color=COLORS[lang], alpha=0.5, label=f"{lang} p99")
        axes[0].axvline(r["max_length"], color=COLORS[lang], ls=":", lw=1)
        axes[1].plot(x, [p["peak_rss_mb"] for p in r["points"]], "o-", color=COLORS[lang], label=lang)
    axes[0].set_ylabel("ms per text (batch 1)")
    axes[0].legend(fontsize=7)
    axes[0].set_title("dotted: the model's max_length (truncation)", fontsize=8)
    axes[1].set_ylabel("peak RSS above start (MB)")
    axes[1].legend()
    xs = sorted({p["tokens"] for r in res.values() for p in r["points"]})
    for i, ax in enumerate(axes):
        _log_axes(ax, xs, logy=i == 0)
        ax.set_xlabel("text length (tokens, before truncation)")
    fig.suptitle("Sentiment: text length")
    _save(fig, path)


def plot_conversation(res: dict, path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    names = {"served": f"as served (last {res['history_messages_served']} messages)", "full": "whole history, fitted"}
    for name, rows in res["series"].items():
        x = [max(r["exchanges"], 0.5) for r in rows]  # 0 drawn at 0.5 on the log axis
        style = "-" if name == "served" else "--"
        axes[0].plot(x, [r["prompt_tokens"] for r in rows], "o" + style, label=names[name])
        for key, color in (("prefill_s", "tab:gray"), ("ttft_s", "tab:orange"), ("turn_s", "tab:green")):
            axes[1].plot(x, [r[key] for r in rows], "o" + style, color=color,
                         label=f"{key.removesuffix('_s')}, {name}")
    axes[0].axhline(res["budget_tokens"], color="k", ls=":", lw=1,
                    label=f"budget {res['budget_tokens']} = context {res['context_tokens']} "
                          f"- max_tokens {res['max_tokens']}")
    axes[0].set_ylabel("prompt tokens")
    axes[0].set_ylim(0, res["budget_tokens"] * 1.25)
    axes[0].legend(fontsize=7, loc="upper left")
    axes[1].set_ylabel("seconds (median)")
    axes[1].legend(fontsize=7, ncol=2, loc="upper left")
    axes[1].set_ylim(0, 1.35 * max(r["turn_s"] for rows in res["series"].values() for r in rows))
    axes[1].set_title(f"one turn, {res['model']}, max_tokens={res['max_tokens']}", fontsize=8)
    exchanges = [r["exchanges"] for r in next(iter(res["series"].values()))]
    for ax in axes:
        _log_axes(ax, [max(n, 0.5) for n in exchanges], [str(n) for n in exchanges])
        ax.set_xlabel("earlier exchanges in the conversation (customer + bot)")
    fig.suptitle("Chat turn: conversation length")
    _save(fig, path)


def plot_kb(res: dict, path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    x = [p["articles"] for p in res["points"]]
    for lang in ("en", "zh"):
        axes[0].plot(x, [p[f"p50_ms_{lang}"] for p in res["points"]], "o-", color=COLORS[lang], label=f"{lang} p50")
        axes[0].plot(x, [p[f"p99_ms_{lang}"] for p in res["points"]], "o--", color=COLORS[lang], alpha=0.5,
                     label=f"{lang} p99")
    ref = res["reference_reply"]
    for value, color, text in ((ref["reply_s"], "k", f"chat model: {ref['tokens']:.0f}-token grounded reply"),
                               (ref["ttft_s"], "tab:gray", "chat model: time to first token")):
        axes[0].axhline(1000 * value, color=color, ls=":", lw=1)
        axes[0].text(x[0], 1000 * value * 1.15, f"{text} {value:.2f} s", fontsize=7, color=color)
    low = min(p[f"p50_ms_{lang}"] for p in res["points"] for lang in ("en", "zh"))
    axes[0].set_ylim(low / 8, 1000 * ref["reply_s"] * 3)
    axes[0].set_ylabel("retrieval ms per query (k=3)")
    axes[0].legend(fontsize=7, loc="lower right", ncol=2)
    axes[1].plot(x, [p["build_s"] for p in res["points"]], "o-", color="tab:purple", label="index build (s)")
    axes[1].set_ylabel("index build (s)")
    twin = axes[1].twinx()
    twin.plot(x, [p["index_mb"] + p["vectors_mb"] for p in res["points"]], "s--", color="tab:brown",
              label="index + vectors (MB)")
    twin.plot(x, [p["vectors_mb"] for p in res["points"]], "s:", color="tab:brown", alpha=0.5, label="vectors (MB)")
    twin.set_ylabel("memory (MB)")
    lines = axes[1].get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    axes[1].legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")
    labels = [f"{n / 1000:g}k" for n in x]
    for ax in (*axes, twin):
        _log_axes(ax, x, labels, base=10, logy=True)
        ax.set_xlabel("articles in the knowledge base")
    fig.suptitle("Knowledge base size: retrieval vs generation")
    _save(fig, path)


PLOTS = {"batch": ("scale-batch.png", plot_batch), "length": ("scale-length.png", plot_length),
         "conversation": ("scale-conversation.png", plot_conversation), "kb": ("scale-kb.png", plot_kb)}


# ---- the table ---------------------------------------------------------------------
def print_table(result: dict) -> None:
    if "batch" in result:
        print("\n== sentiment: batch size (same texts, split into batches) ==")
        print(f"{'lang':<5}{'batch':>6}{'ms/batch':>10}{'ms/text':>9}{'texts/s':>9}{'peak MB':>9}")
        for lang, r in result["batch"].items():
            for p in r["points"]:
                print(f"{lang:<5}{p['batch']:>6}{p['ms_per_batch']:>10.1f}{p['ms_per_text']:>9.1f}"
                      f"{p['texts_per_s']:>9.1f}{p['peak_rss_mb']:>9.0f}")
    if "length" in result:
        print("\n== sentiment: text length (batch 1) ==")
        print(f"{'lang':<5}{'tokens':>7}{'processed':>10}{'p50 ms':>8}{'p99 ms':>8}{'peak MB':>9}")
        for lang, r in result["length"].items():
            for p in r["points"]:
                print(f"{lang:<5}{p['tokens_actual']:>7.0f}{p['tokens_processed']:>10.0f}{p['p50_ms']:>8.1f}"
                      f"{p['p99_ms']:>8.1f}{p['peak_rss_mb']:>9.0f}")
    if "conversation" in result:
        c = result["conversation"]
        print(f"\n== chat turn: conversation length ({c['model']}, max_tokens {c['max_tokens']}, "
              f"budget {c['budget_tokens']} tokens) ==")
        print(f"{'history':<8}{'exch.':>6}{'msgs':>5}{'prompt tok':>11}{'prefill s':>10}{'TTFT s':>8}{'turn s':>8}"
              f"{'peak MB':>9}")
        for name, rows in c["series"].items():
            for r in rows:
                print(f"{name:<8}{r['exchanges']:>6}{r['messages_to_model']:>5}{r['prompt_tokens']:>11}"
                      f"{r['prefill_s']:>10.2f}{r['ttft_s']:>8.2f}{r['turn_s']:>8.2f}{r['peak_rss_mb']:>9.0f}")
    if "kb" in result:
        k = result["kb"]
        print(f"\n== knowledge base size (k=3; {k['queries']['en']} en + {k['queries']['zh']} zh queries; "
              f"{k['embedded']} real article vectors) ==")
        print(f"{'articles':>9}{'build s':>9}{'index MB':>9}{'vectors MB':>11}{'peak MB':>9}"
              f"{'p50 en':>8}{'p99 en':>8}{'p50 zh':>8}{'p99 zh':>8}   (ms)")
        for p in k["points"]:
            print(f"{p['articles']:>9,}{p['build_s']:>9.2f}{p['index_mb']:>9.0f}{p['vectors_mb']:>11.0f}"
                  f"{p['build_peak_rss_mb']:>9.0f}{p['p50_ms_en']:>8.1f}{p['p99_ms_en']:>8.1f}{p['p50_ms_zh']:>8.1f}"
                  f"{p['p99_ms_zh']:>8.1f}")
        chk, ref = k["check"], k["reference_reply"]
        print(f"embedding at import: {k['embed_articles_per_s']:.0f} articles/s")
        print(f"retrieval p50 at {chk['articles']:,} articles (slower language) {chk['retrieval_p50_ms']:.1f} ms vs a "
              f"{ref['tokens']:.0f}-token reply {chk['reply_ms']:.0f} ms (TTFT {1000 * ref['ttft_s']:.0f} ms): "
              f"{'PASS' if chk['pass'] else 'FAIL'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few points, few repeats")
    ap.add_argument("--only", choices=["batch", "length", "conversation", "kb"], action="append",
                    help="run only this curve (repeatable)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per point (default 3; --quick 1)")
    ap.add_argument("--build-repeats", type=int, default=None, help="index builds per KB size (default 3; --quick 1)")
    ap.add_argument("--embed", type=int, default=None,
                    help="articles embedded with the real encoder (default 1000; --quick 200); the rest reuse them")
    ap.add_argument("--kb-sizes", help="comma list of knowledge-base sizes (default 1000,...,100000)")
    ap.add_argument("--turn-tokens", type=int, default=16, help="max_tokens of a turn in the conversation curve")
    ap.add_argument("--reply-tokens", type=int, default=32, help="max_tokens of the reference reply (kb check)")
    ap.add_argument("--threads", type=int, help="torch threads (default: the configured SUPPORTBOT_THREADS, else all cores)")
    ap.add_argument("--no-zh", action="store_true", help="skip the Chinese sentiment model (slow)")
    ap.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets",
                    help="Bitext and STC-3 for the knowledge base and the history (synthetic text without them)")
    ap.add_argument("--plots", type=Path, default=ROOT / "docs", help="where the PNGs go")
    ap.add_argument("--json", type=Path, default=ROOT / "runs/bench-scale.json")
    ap.add_argument("--replot", type=Path, help="only redraw the PNGs and the table from this JSON")
    args = ap.parse_args()
    if args.replot:
        result = json.loads(args.replot.read_text())
        args.plots.mkdir(parents=True, exist_ok=True)
        for name, (file, plot) in PLOTS.items():
            if name in result:
                plot(result[name], args.plots / file)
        print_table(result)
        return 0
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.build_repeats = args.build_repeats or (1 if args.quick else 3)
    args.embed = args.embed or (200 if args.quick else 1000)
    points = dict(QUICK if args.quick else FULL)
    if args.kb_sizes:
        points["kb"] = [int(x) for x in args.kb_sizes.split(",")]
    curves = args.only or ["batch", "length", "conversation", "kb"]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from core.config import settings_with
    from bot.runtime import Runtime, configure_torch, use_offline_hub_for_local_models

    started = time.perf_counter()
    configured = settings_with()
    home = tempfile.mkdtemp(prefix="bench-scale-")
    settings = settings_with(home=home, model_cache=str(configured.model_cache_dir.resolve()), ui=False,
                             sentiment_micro_batching=False, rate_limit_per_minute=0, threads=args.threads)
    use_offline_hub_for_local_models(settings)
    configure_torch(settings)
    runtime = Runtime.start(settings)
    result: dict = {"machine": machine(), "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                    "points": points}
    print(f"machine: {result['machine']}", flush=True)
    runs = {"batch": curve_batch, "length": curve_length, "conversation": curve_conversation, "kb": curve_kb}
    args.plots.mkdir(parents=True, exist_ok=True)
    for name in curves:
        print(f"{name}:", flush=True)
        t = time.perf_counter()
        result[name] = runs[name](runtime, args, points)
        result.setdefault("seconds", {})[name] = round(time.perf_counter() - t, 1)
        file, plot = PLOTS[name]
        plot(result[name], args.plots / file)
    result["seconds"]["total"] = round(time.perf_counter() - started, 1)
    print_table(result)
    print(f"\nwall time {result['seconds']['total']:.0f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"wrote {args.json}")
    runtime.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
