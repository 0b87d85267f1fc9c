"""Measure the dialogue's retrieval and escalation on the labelled sets we wrote.

    python scripts/eval_dialogue.py [--questions scripts/data/kb_questions.jsonl]
        [--escalation scripts/data/escalation_cases.jsonl] [--json runs/eval-dialogue.json]

Retrieval: the demo knowledge base is imported into a throwaway database; each in-scope
question must find its article first (top-1 accuracy) with a score above the answer
threshold; out-of-scope questions must stay below it. Escalation: each case's customer
turns go through the real sentiment models and the escalation rules; precision and
recall of "hand over", and accuracy of the reason, per language.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.config import settings_with  # noqa: E402
from bot.escalation import EscalationPolicy, TurnSignals  # noqa: E402
from bot.knowledge import DEMO_KB_DIR, import_articles, read_article_files  # noqa: E402
from bot.runtime import Runtime  # noqa: E402

DATA = Path(__file__).parent / "data"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def eval_retrieval(runtime: Runtime, questions: list[dict], threshold: float) -> dict:
    index = runtime.knowledge()
    intents = runtime.intent.classify([q["question"] for q in questions]) if runtime.intent else [None] * len(questions)
    out: dict = defaultdict(lambda: defaultdict(int))
    misses = []
    for q, intent in zip(questions, intents):
        hits = index.search(q["question"], language=q["language"], k=1, intent=intent)
        top = hits[0] if hits else None
        answered = top is not None and top.score >= threshold
        m = out[q["language"]]
        if q["article_id"] is None:
            m["out_of_scope"] += 1
            m["out_of_scope_refused"] += not answered
            if answered:
                misses.append({"question": q["question"], "expected": None, "got": top.id, "score": round(top.score, 3)})
        else:
            m["in_scope"] += 1
            m["top1_correct"] += bool(top and top.id == q["article_id"])
            m["answered_correct"] += bool(answered and top.id == q["article_id"])
            if not (answered and top.id == q["article_id"]):
                misses.append({"question": q["question"], "expected": q["article_id"], "got": top and top.id,
                               "score": top and round(top.score, 3)})
    result = {}
    for lang, m in out.items():
        result[lang] = {
            "in_scope": m["in_scope"], "top1_accuracy": round(m["top1_correct"] / m["in_scope"], 4),
            "answered_correctly": round(m["answered_correct"] / m["in_scope"], 4),
            "out_of_scope": m["out_of_scope"],
            "out_of_scope_refused": round(m["out_of_scope_refused"] / max(1, m["out_of_scope"]), 4),
        }
    return {"by_language": result, "misses": misses}


def eval_escalation(runtime: Runtime, cases: list[dict], policy: EscalationPolicy) -> dict:
    texts = sorted({t for c in cases for t in c["turns"]})
    sentiments = dict(zip(texts, runtime.sentiment.classify(texts)))
    by_lang: dict = defaultdict(lambda: defaultdict(int))
    errors = []
    for c in cases:
        turns = [TurnSignals(t, sentiments[t].language, sentiments[t].label, sentiments[t].score) for t in c["turns"]]
        got = policy.decide(turns)
        m = by_lang[c["language"]]
        m["cases"] += 1
        m["tp"] += bool(got) and c["escalate"]
        m["fp"] += bool(got) and not c["escalate"]
        m["fn"] += (not got) and c["escalate"]
        m["reason_correct"] += bool(got) and got == c["reason"]
        if bool(got) != c["escalate"] or (got and got != c["reason"]):
            errors.append({"turns": c["turns"], "expected": c["reason"], "got": got,
                           "sentiment": [(sentiments[t].label, round(sentiments[t].score, 3)) for t in c["turns"]]})
    result = {}
    for lang, m in sorted(by_lang.items()):
        p = m["tp"] / max(1, m["tp"] + m["fp"])
        r = m["tp"] / max(1, m["tp"] + m["fn"])
        result[lang] = {"cases": m["cases"], "precision": round(p, 4), "recall": round(r, 4),
                        "reason_accuracy_on_true_positives": round(m["reason_correct"] / max(1, m["tp"]), 4)}
    return {"by_language": result, "errors": errors}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=Path, default=DATA / "kb_questions.jsonl")
    ap.add_argument("--escalation", type=Path, default=DATA / "escalation_cases.jsonl")
    ap.add_argument("--kb", type=Path, default=DEMO_KB_DIR)
    ap.add_argument("--threshold", type=float, default=None, help="answer threshold (default: the setting)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--show-errors", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as home:
        cache = settings_with().model_cache_dir.resolve()  # converted models are reused
        settings = settings_with(home=home, model_cache=cache, demo_kb=False, chat_backend="local")
        runtime = Runtime.start(settings, generator=False)
        with runtime.sessions.begin() as session:
            import_articles(session, read_article_files([args.kb]), runtime.embedder)
        threshold = args.threshold if args.threshold is not None else settings.answer_threshold
        retrieval = eval_retrieval(runtime, read_jsonl(args.questions), threshold)
        escalation = eval_escalation(runtime, read_jsonl(args.escalation), EscalationPolicy())
        runtime.close()
    print(f"retrieval (answer threshold {threshold}):")
    print(f"  {'lang':<5} {'in-scope':>8} {'top-1':>7} {'answered right':>15} {'out-of-scope':>12} {'refused':>8}")
    for lang, m in sorted(retrieval["by_language"].items()):
        print(f"  {lang:<5} {m['in_scope']:>8} {m['top1_accuracy']:>7.1%} {m['answered_correctly']:>15.1%} "
              f"{m['out_of_scope']:>12} {m['out_of_scope_refused']:>8.1%}")
    print("escalation:")
    print(f"  {'lang':<5} {'cases':>6} {'precision':>10} {'recall':>7} {'reason right':>13}")
    for lang, m in escalation["by_language"].items():
        print(f"  {lang:<5} {m['cases']:>6} {m['precision']:>10.1%} {m['recall']:>7.1%} "
              f"{m['reason_accuracy_on_true_positives']:>13.1%}")
    if args.show_errors:
        for e in retrieval["misses"] + escalation["errors"]:
            print("  miss:", json.dumps(e, ensure_ascii=False))
    report = {"threshold": threshold, "retrieval": retrieval, "escalation": escalation}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
