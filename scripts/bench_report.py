"""The performance table of the README, from the JSON files the benchmarks write.

    python scripts/bench_report.py [DIR]        # DIR: where the bench_*.py wrote (default runs/)

Reads bench-sentiment.json, bench-chat.json, bench-finetune.json, bench-scale.json,
bench-load.json and bench-serve.json (whichever exist) and prints one Markdown table: what
was measured, ours, the baseline, the ratio, the target and whether it was met, then the
machine and date of each run. `make bench` runs every benchmark and then this.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(directory: Path, name: str) -> dict | None:
    path = directory / f"bench-{name}.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SystemExit(f"{path}: not JSON ({exc}); run its benchmark again")


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def sentiment_rows(d: dict) -> list[tuple]:
    t, lat, con = d["throughput"], d["latency"], d["concurrency"]
    ours, base = t["ours"], t["pipeline"]
    ratio = t["ratio_ours_over_pipeline"]
    models = d.get("models") or {"en": "sentiment-en", "zh": "sentiment-zh"}
    rows = [
        ("sentiment throughput, 2,000 texts over HTTP vs `pipeline` (texts/s)", f"{ours['all']['texts_per_s']:.1f}",
         f"{base['all']['texts_per_s']:.1f}", f"{ratio['all']:.2f}×", "≥ 4×", _met(ratio["all"] >= 4)),
        (f"  English (SST-2 dev, {models['en']})", f"{ours['en']['texts_per_s']:.1f}", f"{base['en']['texts_per_s']:.1f}",
         f"{ratio['en']:.2f}×", "", ""),
        (f"  Chinese (ChnSentiCorp, {models['zh']})", f"{ours['zh']['texts_per_s']:.1f}",
         f"{base['zh']['texts_per_s']:.1f}", f"{ratio['zh']:.2f}×", "", ""),
    ]
    prev = d.get("previous")
    if prev:  # bench_sentiment.py's "previous" part: the serving defaults before issues 16 and 20
        r = prev["all"]["texts_per_s"]
        rows.append(("sentiment throughput, 2,000 texts over HTTP vs the previous server (same run; "
                     f"{', '.join(f'{k}={v}' for k, v in prev['settings'].items())}) (texts/s)",
                     f"{ours['all']['texts_per_s']:.1f}", f"{r:.1f}", f"{ours['all']['texts_per_s'] / r:.2f}×",
                     "≥ 10×", _met(ours["all"]["texts_per_s"] / r >= 10)))
    gap = abs(ours["en"]["accuracy"] - base["en"]["accuracy"]) * 100
    rows.append(("SST-2 dev accuracy", f"{ours['en']['accuracy'] * 100:.2f}", f"{base['en']['accuracy'] * 100:.2f}",
                 f"{gap:+.2f} pt", "within 0.3 pt", _met(gap <= 0.3)))
    for lang in ("en", "zh"):
        o, p = lat[lang]["ours"], lat[lang]["pipeline"]
        rows.append((f"one short text ({lang}), p50 / p99 (ms)", f"{o['p50_ms']:.1f} / {o['p99_ms']:.1f}",
                     f"{p['p50_ms']:.1f} / {p['p99_ms']:.1f}", f"{o['p50_ms'] / p['p50_ms']:.2f}×", "p50 ≤ 10 ms",
                     _met(o["p50_ms"] <= 10)))
    c = con["micro-batching"]
    rows.append((f"{c['clients']} concurrent single-text clients vs sequential (calls/s)",
                 f"{c['concurrent_calls_per_s']:.1f}", f"{c['sequential_calls_per_s']:.1f}", f"{c['ratio']:.2f}×",
                 "≥ 3×", _met(c["ratio"] >= 3)))
    return rows


def chat_rows(d: dict) -> list[tuple]:
    """Per engine (bench_chat.py --engine; older files: one unnamed engine, torch), then
    the engines against each other."""
    engines = d.get("engines") or {"torch": d}
    rows = []
    for engine, e in engines.items():
        rows += _chat_engine_rows(engine if "engines" in d else "", e)
    if {"torch", "llama_cpp"} <= set(engines):
        t, ll = engines["torch"], engines["llama_cpp"]
        ratio = ll["http"]["tokens_per_s"] / t["http"]["tokens_per_s"]
        rows.append(("chat: streamed tokens/s over HTTP, llama.cpp vs torch", f"{ll['http']['tokens_per_s']:.1f}",
                     f"{t['http']['tokens_per_s']:.1f}", f"{ratio:.2f}×", "≥ 5× today's server", ""))
    return rows


def _chat_engine_rows(engine: str, d: dict) -> list[tuple]:
    b, h, r, c = d["baseline"], d["http"], d["ratios"], d["concurrency"]
    steps = sum(d["pipeline"][k] for k in ("sentiment_s", "intent_s", "retrieval_s"))
    chat = f"chat ({engine})" if engine else "chat"
    raw = "raw llama.cpp" if engine == "llama_cpp" else "raw `generate`"
    rows = [
        (f"{chat}: time to first token over HTTP vs the model's prefill (s)", f"{h['ttft_s']:.3f}",
         f"{b['prefill_s']:.3f}", f"{r['ttft_over_prefill']:.2f}×", "≤ 1.2×", _met(r["ttft_over_prefill"] <= 1.2)),
        (f"{chat}: streamed tokens/s vs {raw}", f"{h['tokens_per_s']:.1f}", f"{b['tokens_per_s']:.1f}",
         f"{r['streamed_over_raw_tokens_per_s']:.2f}×", "≥ 0.9×", _met(r["streamed_over_raw_tokens_per_s"] >= 0.9)),
        (f"{chat}: share of a turn outside {raw} (steps, storage, HTTP, slower decoding in the server)",
         f"{r['pipeline_share'] * 100:.1f}%", "", "", "≤ 15%", _met(r["pipeline_share"] <= 0.15)),
        (f"{chat}: sentiment + intent + retrieval (in-process) share of the turn over HTTP",
         f"{steps * 1000:.0f} ms = {steps / h['turn_s'] * 100:.1f}%", "", "", "≤ 15%", _met(steps / h["turn_s"] <= 0.15)),
        (f"{chat}: {c['conversations']} concurrent conversations vs one (tokens/s)",
         f"{c['batched']['tokens_per_s']:.1f}", f"{c['one_tokens_per_s']:.1f}", f"{r['concurrent_over_one']:.2f}×",
         "≥ 2×", _met(r["concurrent_over_one"] >= 2)),
    ]
    if c.get("unbatched"):
        u = c["unbatched"]
        rows.append(("  same, continuous batching off", f"{u['tokens_per_s']:.1f}", f"{u['one_tokens_per_s']:.1f}",
                     f"{u['tokens_per_s'] / u['one_tokens_per_s']:.2f}×", "", ""))
    if d.get("full_turn"):
        f = d["full_turn"]
        rows.append((f"{chat}: full English turn with a generated grounded answer, median (s; {f['tokens']:.0f} "
                     "tokens)", f"{f['turn_s']:.2f}", "", "", "≤ 1.5 s", _met(f["turn_s"] <= 1.5)))
    return rows


def load_rows(d: dict) -> list[tuple]:
    rows = []
    for run in d["runs"]:
        ok = run["errors"] == 0 and run["found"] == run["acked"]
        rows.append((f"load: {run['turns']} turns, {d['args'].get('clients', 64)} clients, {run['db']} — "
                     "p50 / p99 per turn (ms)", f"{run['p50_ms']:.0f} / {run['p99_ms']:.0f}", "", "",
                     "0 errors, all acked found",
                     f"{_met(ok)}: {run['errors']} errors, {run['found']}/{run['acked']} found"))
    return rows


def finetune_rows(d: dict) -> list[tuple]:
    """Each configuration's samples/s and whole-process peak RSS, then the comparisons."""
    rows = []
    for name, r in d["results"].items():
        rows.append((f"fine-tune {name} ({r['base']}, {r['batch_size']}×{r['seq_len']} tokens): samples/s, peak RSS",
                     f"{r['samples_per_s']:.2f}/s, {r['process_peak_mib']:.0f} MiB", "", "", "reported", ""))
    for c in d.get("comparisons", []):
        target = c.get("target")
        met = ""
        if target is not None:
            met = _met(c["process_peak"] <= target) + (
                f" (model tensors alone: {c['model_state']:.2f}×)" if "model_state" in c else "")
        rows.append((f"fine-tune {c['compare']}: peak RSS ratio (samples/s ratio {c['samples_per_s']:.2f}×)",
                     "", "", f"{c['process_peak']:.2f}×", f"≤ {target}×" if target is not None else "", met))
    return rows


def scale_rows(d: dict) -> list[tuple]:
    """The one scale target: retrieval p50 at the largest knowledge base vs a reply's time."""
    if "kb" not in d:
        return []
    chk, ref = d["kb"]["check"], d["kb"]["reference_reply"]
    return [(f"retrieval p50 at {chk['articles']:,} articles vs a {ref['max_tokens']}-token reply (ms)",
             f"{chk['retrieval_p50_ms']:.1f}", f"{chk['reply_ms']:.0f}", f"{chk['retrieval_p50_ms'] / chk['reply_ms']:.3f}×",
             "retrieval < generation", _met(chk["pass"]))]


def serve_rows(d: dict) -> list[tuple]:
    """bench_serve.py: `serve` with today's defaults (ours) against the previous defaults
    (baseline), cold (empty model cache) and warm; ratios are ours / baseline."""
    after, before = d["configs"].get("after") or {}, d["configs"].get("before") or {}

    def cells(key: str, show) -> list:
        a, b = after.get(key), before.get(key)
        x, y = show(a, True) if a else None, show(b, True) if b else None
        ratio = f"{x / y:.2f}×" if x is not None and y else ""
        return [show(a, False) if a else "", show(b, False) if b else "", ratio]

    def times(s: dict, number: bool):
        return s["first_chat_s"] if number else \
            f"{s['ready_s']:.1f} / {s['first_sentiment_s']:.1f} / {s['first_chat_s']:.1f}"

    def converting(s: dict, number: bool):
        conv = s["server_log"].get("converting_s")
        return conv if number else ("?" if conv is None else f"{conv:.0f}")

    def peak(s: dict, number: bool):
        return s["peak_rss_mib"]["total"] if number else f"{s['peak_rss_mib']['total']:.0f}"

    rows = []
    for start, what in (("cold", "cold start (empty model cache, as a fresh clone)"), ("warm", "warm start")):
        if start not in after and start not in before:
            continue
        rows.append((f"serve, {what}: ready / first sentiment answer / first chat reply (s after the process "
                     "started)", *cells(start, times), "reported", ""))
        rows.append(("  of which converting packaged models (s, from the server's log)",
                     *cells(start, converting), "", ""))
        rows.append((f"serve, {start} start: peak RSS with all default models, after the workload (MiB)",
                     *cells(start, peak), "reported", ""))
    warm = after.get("warm") or after.get("cold")
    if warm:
        w = warm["workload"]
        rows.append((f"serve workload ({'warm' if after.get('warm') else 'cold'} start, today's defaults): "
                     f"{w['sentiment_texts']} sentiment texts (texts/s); chat turn median en / zh (s)",
                     f"{w['texts_per_s']:.1f}; {w.get('chat_median_s_en', float('nan')):.2f} / "
                     f"{w.get('chat_median_s_zh', float('nan')):.2f}", "", "", "reported", ""))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", nargs="?", type=Path, default=ROOT / "runs")
    args = ap.parse_args()
    sections = [("sentiment", sentiment_rows), ("chat", chat_rows), ("finetune", finetune_rows),
                ("scale", scale_rows), ("load", load_rows), ("serve", serve_rows)]
    rows, runs, missing = [], [], []
    for name, build in sections:
        data = _load(args.dir, name)
        if data is None:
            missing.append(name)
            continue
        rows += build(data)
        machine = data.get("machine", {})
        date = data.get("date") or machine.get("date", "?")
        runs.append(f"bench_{name}.py: {date}, {machine.get('cpu') or machine.get('processor', '?')}, "
                    f"{machine.get('cores') or machine.get('cpus', '?')} cores")
    if not rows:
        print(f"no bench-*.json in {args.dir}: run `make bench` first", file=sys.stderr)
        return 1
    print("| measured | ours | baseline | ratio | target | |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")
    print()
    for line in runs:
        print(f"- {line}")
    if missing:
        print(f"- not run: {', '.join('bench_' + m + '.py' for m in missing)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
