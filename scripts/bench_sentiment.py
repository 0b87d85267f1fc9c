"""Sentiment serving speed: /v1/sentiment over HTTP vs a plain transformers pipeline.

    python scripts/bench_sentiment.py                      # the full run (README numbers)
    python scripts/bench_sentiment.py --n 100 --calls 30   # a quick check

Both sides run the shipped models (sentiment-en: MiniLM + LoRA, sentiment-zh:
Gemma-3-270M + LoRA) on the same texts. The server is the real app (app.server) under
uvicorn in a subprocess on loopback, with the sentiment model loaded and the serving
settings of bot/config.py (micro-batching, --quantize); rate limiting is off and the
other models are not loaded. The baseline is what a user would otherwise write: the
LoRA adapters merged into plain model directories (under --work-dir) and
`transformers.pipeline("text-classification")` over them, called on the list of texts
with its defaults (one text per forward pass), with the same truncation as ours
(`max_length` of each adapter) and the same language routing (bot.language).

1. throughput: --n texts = SST-2 dev + ChnSentiCorp test (in that proportion; the full
   2,000 are all 872 SST-2 dev rows + the first 1,128 ChnSentiCorp test rows), sent by one
   client in requests of --request-size texts, English then Chinese; texts/s per language
   and in all, median of --repeats runs after a warm-up; accuracy of both from the first
   run (binary sets: negative vs positive score). The baseline is also run with
   batch_size=--request-size as a second reference.
2. latency: one short text per call, --calls sequential calls (English, then Chinese),
   p50/p99 over HTTP vs the pipeline's single call on the same text.
3. concurrency: --calls single-text calls from --clients concurrent clients (each its own
   connection) vs the same calls made one after another; also with micro-batching off
   (a second server) to show what the batcher adds.
4. zh routes (--zh-models A,B,...): Chinese texts/s through /v1/sentiment with each model
   as the Chinese route, one server after another in the same run (so "before" and "after"
   a change of the Chinese model are measured side by side), with each model's
   ChnSentiCorp accuracy and the plain pipeline's texts/s on the same reviews.

    python scripts/bench_sentiment.py --parts zh-routes --zh-models sentiment-zh,sentiment-zh-me5

5. previous: the same texts through a server with the serving defaults before issues 16
   and 20 (Chinese on Gemma-3-270M, every classifier fp32 on PyTorch: PREVIOUS_DEFAULTS),
   one timed run: "today's server" of issue 20's target (>= 10x), measured in the same run.

Prints a table and writes --json. Timings are wall-clock on a machine that runs the
client and the server together, as a single box serving its own UI would.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import cpu_name, free_port, percentile, timed, wait_healthy  # noqa: E402

# the files of scripts/prepare_sentiment_data.py: data/sentiment, else runs/data/sentiment
DATA = next((d for d in (ROOT / "data/sentiment", ROOT / "runs/data/sentiment") if d.is_dir()), ROOT / "data/sentiment")
SST2 = DATA / "sst2_dev.csv"
CHNSENTICORP = DATA / "chnsenticorp_test.csv"
SHORT_TEXTS = {"en": "Where is my order?", "zh": "请问可以开发票吗？"}
# the serving defaults before issues 16 and 20 (the README's 18.2 texts/s of 2026-11-22):
# the Chinese route on Gemma-3-270M, every classifier in fp32 on PyTorch
PREVIOUS_DEFAULTS = {"sentiment_model_zh": "sentiment-zh", "inference_dtype": "fp32"}


# ---- the server (a subprocess: `bench_sentiment.py --serve PORT`) ----------------------
def serve(args) -> int:
    from core.config import settings_with
    from bot.runtime import Runtime, use_offline_hub_for_local_models

    previous = PREVIOUS_DEFAULTS if args.previous_defaults else {}
    settings = settings_with(home=args.server_home, model_cache=args.model_cache, rate_limit_per_minute=0, ui=False, demo_kb=False,
                             intent_model="none", sentiment_quantize=args.quantize,
                             **({"sentiment_model_zh": args.sentiment_model_zh} if args.sentiment_model_zh else {}),
                             **previous,
                             sentiment_micro_batching=not args.no_batching, sentiment_batch_wait_ms=args.batch_wait_ms)
    use_offline_hub_for_local_models(settings)
    runtime = Runtime.start(settings)
    runtime.sentiment  # load now, not on the first request
    import uvicorn

    from app.server import create_app

    uvicorn.run(create_app(runtime, ui=False), host="127.0.0.1", port=args.serve, log_level="warning",
                access_log=False)
    return 0


class Server:
    """`python bench_sentiment.py --serve PORT` in a subprocess, until closed."""

    def __init__(self, args, *, batching: bool = True, zh_model: str | None = None, previous: bool = False):
        self.port = free_port()
        self.home = tempfile.mkdtemp(prefix="bench-sentiment-")
        cmd = [sys.executable, __file__, "--serve", str(self.port), "--server-home", self.home,
               "--model-cache", str(args.model_cache),
               "--quantize", args.quantize, "--batch-wait-ms", str(args.batch_wait_ms)]
        if not batching:
            cmd.append("--no-batching")
        if zh_model:
            cmd += ["--sentiment-model-zh", zh_model]
        if previous:
            cmd.append("--previous-defaults")
        self.proc = subprocess.Popen(cmd, cwd=ROOT)
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 600) -> None:
        failure = wait_healthy(self.proc, self.url + "/healthz", timeout_s)
        if failure:
            self.close()
            raise SystemExit(f"the server {failure}; see its log above")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.home, ignore_errors=True)


def classify_http(client, texts: list[str]) -> list[dict]:
    r = client.post("/v1/sentiment", json={"texts": texts})
    if r.status_code != 200:
        raise SystemExit(f"/v1/sentiment answered {r.status_code}: {r.text[:300]}")
    return r.json()["results"]


# ---- data --------------------------------------------------------------------------
def read_rows(path: Path, max_chars: int) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = [(r["text"].strip()[:max_chars], r["label"]) for r in csv.DictReader(fh)]
    return [r for r in rows if r[0]]


def workload(n: int, max_chars: int) -> dict[str, list[tuple[str, str]]]:
    """n texts: SST-2 dev and ChnSentiCorp test in the 872 : 1,128 proportion of n=2,000."""
    en, zh = read_rows(SST2, max_chars), read_rows(CHNSENTICORP, max_chars)
    n_en = min(len(en), round(n * 872 / 2000))
    return {"en": en[:n_en], "zh": zh[: n - n_en]}


def binary_accuracy(scores: list[dict], gold: list[str]) -> float:
    """negative vs positive score, as supportbot eval scores its 3-class models on binary sets."""
    hits = sum(("positive" if s.get("positive", 0) > s.get("negative", 0) else "negative") == g
               for s, g in zip(scores, gold))
    return hits / max(1, len(gold))


# ---- the baseline ------------------------------------------------------------------
def merged_model_dir(ref: str, work_dir: Path) -> tuple[Path, int]:
    """The adapter merged into a plain transformers directory (made once), and its max_length."""
    from bot.classifier import TextClassifier
    from core.config import settings_with

    target = work_dir / "merged" / ref
    meta_file = target / "bench.json"
    if meta_file.is_file():
        return target, json.loads(meta_file.read_text())["max_length"]
    clf = TextClassifier.load(ref, settings_with().model_cache_dir)
    clf.model.config.id2label = dict(enumerate(clf.labels))
    clf.model.config.label2id = {label: i for i, label in enumerate(clf.labels)}
    clf.model.save_pretrained(target)
    clf.tokenizer.save_pretrained(target)
    meta_file.write_text(json.dumps({"ref": ref, "max_length": clf.max_length}))
    return target, clf.max_length


class Baseline:
    def __init__(self, refs: dict[str, str], work_dir: Path):
        from transformers import pipeline

        self.pipes, self.max_length = {}, {}
        for lang, ref in refs.items():
            path, self.max_length[lang] = merged_model_dir(ref, work_dir)
            self.pipes[lang] = pipeline("text-classification", model=str(path), device="cpu")

    def classify(self, lang: str, texts: list[str], batch_size: int = 1) -> list[dict]:
        out = self.pipes[lang](texts, top_k=None, truncation=True, max_length=self.max_length[lang],
                               batch_size=batch_size)
        return [{d["label"]: d["score"] for d in row} for row in out]


# ---- measurements ------------------------------------------------------------------
def throughput(args, server: Server, baseline: Baseline, data) -> dict:
    import httpx

    out: dict = {"n": {lang: len(rows) for lang, rows in data.items()}}
    size = args.request_size
    with httpx.Client(base_url=server.url, timeout=600) as client:
        def ours(lang, rows):
            texts = [t for t, _ in rows]
            return [r for i in range(0, len(texts), size) for r in classify_http(client, texts[i:i + size])]

        runs = {"ours": lambda lang, rows: [r["scores"] for r in ours(lang, rows)],
                "pipeline": lambda lang, rows: baseline.classify(lang, [t for t, _ in rows]),
                f"pipeline_bs{size}": lambda lang, rows: baseline.classify(lang, [t for t, _ in rows], size)}
        for name, run in runs.items():
            for lang, rows in data.items():
                if not rows:
                    continue
                run(lang, rows[: min(len(rows), 2 * size)])  # warm-up
                seconds, accuracy = [], None
                for rep in range(args.repeats):
                    t = time.perf_counter()
                    scores = run(lang, rows)
                    seconds.append(time.perf_counter() - t)
                    if rep == 0:
                        accuracy = binary_accuracy(scores, [g for _, g in rows])
                s = statistics.median(seconds)
                out.setdefault(name, {})[lang] = {"seconds": s, "runs_s": seconds, "texts_per_s": len(rows) / s,
                                                   "accuracy": accuracy}
                print(f"  {name:<14} {lang}: {len(rows) / s:8.1f} texts/s  accuracy {accuracy:.4f}", flush=True)
            total_s = sum(v["seconds"] for v in out[name].values())
            out[name]["all"] = {"seconds": total_s, "texts_per_s": sum(out["n"].values()) / total_s}
    for name in runs:
        if name != "ours":
            out[f"ratio_ours_over_{name}"] = {k: out["ours"][k]["texts_per_s"] / out[name][k]["texts_per_s"]
                                              for k in out["ours"]}
    return out


def latency(args, server: Server, baseline: Baseline) -> dict:
    import httpx

    out = {}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for lang, text in SHORT_TEXTS.items():
            row = {}
            for name, call in (("ours", lambda: classify_http(client, [text])),
                               ("pipeline", lambda: baseline.classify(lang, [text]))):
                for _ in range(min(20, args.calls)):
                    call()  # warm-up
                times = [timed(call) for _ in range(args.calls)]
                row[name] = {"p50_ms": 1000 * percentile(times, 50), "p99_ms": 1000 * percentile(times, 99),
                             "mean_ms": 1000 * statistics.fmean(times)}
                print(f"  {name:<14} {lang}: p50 {row[name]['p50_ms']:7.1f} ms  p99 {row[name]['p99_ms']:7.1f} ms",
                      flush=True)
            out[lang] = row
    return out


def concurrency(args, server: Server, texts: list[str], label: str) -> dict:
    """calls/s of --calls single-text calls, one after another and from --clients threads."""
    import httpx

    with httpx.Client(base_url=server.url, timeout=120) as client:
        for t in texts[:20]:
            classify_http(client, [t])  # warm-up
        sequential_s = timed(lambda: [classify_http(client, [t]) for t in texts])

    clients = [httpx.Client(base_url=server.url, timeout=120) for _ in range(args.clients)]
    for c in clients:
        classify_http(c, [texts[0]])  # open each connection before timing
    barrier = threading.Barrier(args.clients + 1)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        barrier.wait()
        try:
            for t in texts[k :: args.clients]:
                classify_http(clients[k], [t])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    concurrent_s = time.perf_counter() - started
    for c in clients:
        c.close()
    if errors:
        raise SystemExit(f"concurrent clients failed: {errors[0]}")
    out = {"calls": len(texts), "clients": args.clients, "sequential_calls_per_s": len(texts) / sequential_s,
           "concurrent_calls_per_s": len(texts) / concurrent_s}
    out["ratio"] = out["concurrent_calls_per_s"] / out["sequential_calls_per_s"]
    print(f"  {label:<24} sequential {out['sequential_calls_per_s']:7.1f} calls/s  {args.clients} clients "
          f"{out['concurrent_calls_per_s']:7.1f} calls/s  ratio {out['ratio']:.2f}", flush=True)
    return out


def zh_routes(args, refs: list[str], rows: list[tuple[str, str]]) -> dict:
    """Chinese texts/s and accuracy through /v1/sentiment with each model as the Chinese route,
    and the plain pipeline's texts/s (one text per call, and --request-size) on the same texts."""
    import httpx

    texts, gold = [t for t, _ in rows], [g for _, g in rows]
    size, out = args.request_size, {}
    for ref in refs:
        server = Server(args, zh_model=ref)
        try:
            with httpx.Client(base_url=server.url, timeout=600) as client:
                def ours(batch):
                    return [r for i in range(0, len(batch), size) for r in classify_http(client, batch[i:i + size])]

                ours(texts[: 2 * size])  # warm-up
                seconds, accuracy, version = [], None, client.get("/healthz").json().get("models", {})
                for rep in range(args.repeats):
                    t = time.perf_counter()
                    results = ours(texts)
                    seconds.append(time.perf_counter() - t)
                    if rep == 0:
                        accuracy = binary_accuracy([r["scores"] for r in results], gold)
                        languages = {r["language"] for r in results}
        finally:
            server.close()
        row = {"texts_per_s": len(texts) / statistics.median(seconds), "runs_s": seconds, "accuracy": accuracy,
               "languages": sorted(languages), "healthz_models": version}
        print(f"  {ref:<22} ours    {row['texts_per_s']:8.1f} texts/s  accuracy {accuracy:.4f}", flush=True)
        baseline = Baseline({"zh": ref}, args.work_dir)
        for name, bs in (("pipeline", 1), (f"pipeline_bs{size}", size)):
            baseline.classify("zh", texts[: 2 * size], bs)  # warm-up
            t = time.perf_counter()
            baseline.classify("zh", texts, bs)
            row[f"{name}_texts_per_s"] = len(texts) / (time.perf_counter() - t)
            print(f"  {ref:<22} {name:<8}{row[f'{name}_texts_per_s']:8.1f} texts/s", flush=True)
        del baseline
        out[ref] = row
    if len(refs) > 1:
        out["ratio_last_over_first"] = out[refs[-1]]["texts_per_s"] / out[refs[0]]["texts_per_s"]
    out["n"] = len(texts)
    return out


def previous_server(args, data, ours: dict | None) -> dict:
    """The same texts through a server with the serving defaults before issues 16 and 20
    (PREVIOUS_DEFAULTS), one timed run after a warm-up: the "today's server" baseline."""
    import httpx

    server, size, out = Server(args, previous=True), args.request_size, {"settings": PREVIOUS_DEFAULTS}
    try:
        with httpx.Client(base_url=server.url, timeout=600) as client:
            for lang, rows in data.items():
                texts = [t for t, _ in rows]
                for i in range(0, min(len(texts), 2 * size), size):
                    classify_http(client, texts[i:i + size])  # warm-up
                t = time.perf_counter()
                scores = [r["scores"] for i in range(0, len(texts), size) for r in classify_http(client, texts[i:i + size])]
                s = time.perf_counter() - t
                out[lang] = {"seconds": s, "texts_per_s": len(texts) / s,
                             "accuracy": binary_accuracy(scores, [g for _, g in rows])}
                print(f"  previous       {lang}: {len(texts) / s:8.1f} texts/s  accuracy {out[lang]['accuracy']:.4f}",
                      flush=True)
    finally:
        server.close()
    out["all"] = {"texts_per_s": sum(len(r) for r in data.values()) / sum(out[k]["seconds"] for k in data)}
    if ours:
        out["ratio_ours_over_previous"] = {k: ours["ours"][k]["texts_per_s"] / out[k]["texts_per_s"] for k in out
                                           if k in ours["ours"]}
    return out


def machine() -> dict:
    import torch
    import transformers

    return {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_average_at_start": os.getloadavg(),
            "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "SUPPORTBOT_THREADS") if k in os.environ}}


def print_table(result: dict) -> None:
    tp, lat, conc = result.get("throughput"), result.get("latency"), result.get("concurrency")
    zh = result.get("zh_routes")
    if zh:
        print(f"\n== Chinese route: /v1/sentiment with each model, same run, {zh['n']} ChnSentiCorp test reviews ==")
        print(f"{'zh model':<26}{'ours/s':>10}{'pipeline/s':>12}{'pipe bs/s':>11}{'accuracy':>10}")
        for ref, row in zh.items():
            if isinstance(row, dict):
                print(f"{ref:<26}{row['texts_per_s']:>10.1f}{row['pipeline_texts_per_s']:>12.1f}"
                      f"{row[next(k for k in row if k.startswith('pipeline_bs'))]:>11.1f}{row['accuracy'] * 100:>10.2f}")
        if "ratio_last_over_first" in zh:
            print(f"last / first: {zh['ratio_last_over_first']:.1f}x")
    if tp or lat or conc:
        print("\n== sentiment: ours (HTTP /v1/sentiment) vs transformers.pipeline, same weights, same texts ==")
    if tp:
        print(f"{'throughput (texts/s)':<26}{'en':>10}{'zh':>10}{'all':>10}   accuracy en / zh")
        for name in [k for k in tp if k != "n" and not k.startswith("ratio")]:
            row = tp[name]
            cells = "".join(f"{row[k]['texts_per_s']:>10.1f}" if k in row else f"{'-':>10}" for k in ("en", "zh", "all"))
            acc = " / ".join(f"{row[k]['accuracy'] * 100:.2f}" if k in row else "-" for k in ("en", "zh"))
            print(f"{name:<26}{cells}   {acc}")
        for name in [k for k in tp if k.startswith("ratio")]:
            cells = "".join(f"{tp[name][k]:>9.2f}x" if k in tp[name] else f"{'-':>10}" for k in ("en", "zh", "all"))
            print(f"{name.replace('ratio_', ''):<26}{cells}")
        print(f"(texts: {tp['n']}; median of {result['args']['repeats']} runs after a warm-up)")
    prev = result.get("previous")
    if prev:
        cells = "".join(f"{prev[k]['texts_per_s']:>10.1f}" if k in prev else f"{'-':>10}" for k in ("en", "zh", "all"))
        print(f"{'previous defaults (1 run)':<26}{cells}   {prev['settings']}")
        if "ratio_ours_over_previous" in prev:
            r = prev["ratio_ours_over_previous"]
            print(f"{'ours_over_previous':<26}" + "".join(f"{r[k]:>9.2f}x" if k in r else f"{'-':>10}" for k in ("en", "zh", "all")))
    if lat:
        print(f"\n{'latency, 1 short text':<26}{'p50 ms':>10}{'p99 ms':>10}")
        for lang, row in lat.items():
            for name, v in row.items():
                print(f"{name + ' ' + lang:<26}{v['p50_ms']:>10.1f}{v['p99_ms']:>10.1f}")
    if conc:
        print(f"\n{'concurrency (calls/s)':<26}{'sequential':>11}{'concurrent':>11}{'ratio':>8}")
        for name, v in conc.items():
            print(f"{name:<26}{v['sequential_calls_per_s']:>11.1f}{v['concurrent_calls_per_s']:>11.1f}{v['ratio']:>7.2f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="texts for the throughput part (SST-2 dev + ChnSentiCorp)")
    ap.add_argument("--calls", type=int, default=500, help="calls for the latency and concurrency parts")
    ap.add_argument("--repeats", type=int, default=3, help="timed throughput runs (the median is reported)")
    ap.add_argument("--request-size", type=int, default=64, help="texts per /v1/sentiment request")
    ap.add_argument("--clients", type=int, default=16, help="concurrent single-text clients")
    ap.add_argument("--quantize", choices=["none", "int8"], default=None,
                    help="the server's sentiment_quantize (default: the configured one)")
    ap.add_argument("--batch-wait-ms", type=float, default=None, help="the server's sentiment_batch_wait_ms")
    ap.add_argument("--parts", default="throughput,latency,concurrency,previous",
                    help="comma list of the parts to run (throughput, latency, concurrency, zh-routes, previous)")
    ap.add_argument("--zh-models", default="", help="zh-routes: comma list of Chinese sentiment models to compare "
                    "(e.g. sentiment-zh,sentiment-zh-me5; adds the part)")
    ap.add_argument("--work-dir", type=Path, default=ROOT / "var/bench", help="merged models for the baseline")
    ap.add_argument("--json", type=Path, default=ROOT / "runs/bench-sentiment.json")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--server-home", help=argparse.SUPPRESS)
    ap.add_argument("--model-cache", help=argparse.SUPPRESS)
    ap.add_argument("--no-batching", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sentiment-model-zh", help=argparse.SUPPRESS)
    ap.add_argument("--previous-defaults", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.serve:
        return serve(args)

    from core.config import settings_with
    from bot.runtime import configure_torch, use_offline_hub_for_local_models

    settings = settings_with()
    args.quantize = args.quantize or settings.sentiment_quantize
    args.batch_wait_ms = settings.sentiment_batch_wait_ms if args.batch_wait_ms is None else args.batch_wait_ms
    args.model_cache = settings.model_cache_dir.resolve()  # the server's home is a temporary one
    use_offline_hub_for_local_models(settings)
    configure_torch(settings)
    parts = set(args.parts.split(","))
    zh_refs = [r.strip() for r in args.zh_models.split(",") if r.strip()]
    if zh_refs:
        parts.add("zh-routes")
    refs = {"en": settings.sentiment_model, "zh": settings.sentiment_model_zh or settings.sentiment_model}
    result: dict = {"machine": machine(), "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                                                    if k not in ("serve", "server_home", "no_batching", "model_cache", "sentiment_model_zh",
                                                                 "previous_defaults")},
                    "models": refs}
    print(f"machine: {result['machine']}", flush=True)
    data = workload(args.n, settings.max_text_chars)
    if "zh-routes" in parts:
        print("zh routes:", flush=True)
        result["zh_routes"] = zh_routes(args, zh_refs or [refs["zh"]], data["zh"])
    if not parts & {"throughput", "latency", "concurrency"}:
        return finish(args, result)
    baseline = Baseline(refs, args.work_dir) if parts & {"throughput", "latency"} else None
    server = Server(args)
    try:
        if "throughput" in parts:
            print("throughput:", flush=True)
            result["throughput"] = throughput(args, server, baseline, data)
        if "latency" in parts:
            print("latency:", flush=True)
            result["latency"] = latency(args, server, baseline)
        if "concurrency" in parts:
            print("concurrency:", flush=True)
            en = sorted({t for t, _ in read_rows(SST2, settings.max_text_chars)}, key=len)
            texts = random.Random(0).sample(en[: len(en) // 2], min(args.calls, len(en) // 2))  # the shorter half
            result["concurrency"] = {"micro-batching": concurrency(args, server, texts, "micro-batching")}
    finally:
        server.close()
    if "previous" in parts:
        print("previous defaults:", flush=True)
        result["previous"] = previous_server(args, data, result.get("throughput"))
    if "concurrency" in parts:
        plain = Server(args, batching=False)
        try:
            result["concurrency"]["no micro-batching"] = concurrency(args, plain, texts, "no micro-batching")
        finally:
            plain.close()
    return finish(args, result)


def finish(args, result: dict) -> int:
    print_table(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
