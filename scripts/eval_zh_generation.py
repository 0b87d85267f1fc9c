"""Can the packaged models write Chinese answers? Measure, to choose the Chinese default.

    python scripts/eval_zh_generation.py [--n 8] [--max-tokens 60] [--json runs/eval-zh-generation.json]

For Chinese questions of scripts/data/kb_questions.jsonl, the right demo-KB article is put
in the prompt and each packaged causal LM writes an answer (greedy). Scored per answer:
  chinese   at least half of its letters are Han characters
  grounded  it repeats a number or a 4-character run from the article
The retrieval answer (the article's own first sentences) is the baseline: it is grounded
and Chinese by construction. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.config import settings_with  # noqa: E402
from bot.knowledge import DEMO_KB_DIR, read_article_files  # noqa: E402
from bot.prompting import retrieval_answer  # noqa: E402
from bot.retrieval import Hit  # noqa: E402

_HAN = re.compile(r"[\u4e00-\u9fff]")


def scores(answer: str, body: str) -> tuple[bool, bool]:
    letters = [c for c in answer if c.isalpha()]
    chinese = bool(letters) and sum(bool(_HAN.match(c)) for c in letters) >= len(letters) / 2
    facts = set(re.findall(r"\d+", body)) | {body[i:i + 4] for i in range(len(body) - 3) if _HAN.match(body[i])}
    grounded = any(f in answer for f in facts if len(f) >= 2)
    return chinese, grounded


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=60)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.model_refs import resolve

    articles = {a.id: a for a in read_article_files([DEMO_KB_DIR])}
    rows = [json.loads(x) for x in (Path(__file__).parent / "data/kb_questions.jsonl").read_text().splitlines()]
    questions = [r for r in rows if r["language"] == "zh" and r["article_id"]][: args.n]
    cache = settings_with().model_cache_dir
    results = {}
    baseline = [scores(retrieval_answer(Hit(a.id, a.title, a.body, "zh", 1.0), language="zh", upset=False), a.body)
                for a in (articles[q["article_id"]] for q in questions)]
    results["retrieval answer"] = {"chinese": sum(c for c, _ in baseline) / len(baseline),
                                   "grounded": sum(g for _, g in baseline) / len(baseline), "s_per_answer": 0.0}
    for name in ("smollm2-135m", "gemma3-270m"):
        path = resolve(name, cache).path
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        got, samples, started = [], [], time.perf_counter()
        for q in questions:
            body = articles[q["article_id"]].body
            prompt = f"以下是客服知识库文章：\n{body}\n\n顾客问题：{q['question']}\n客服回答："
            enc = tok(prompt, return_tensors="pt")
            with torch.inference_mode():
                out = model.generate(**enc, max_new_tokens=args.max_tokens, do_sample=False,
                                     pad_token_id=tok.pad_token_id or tok.eos_token_id)
            answer = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()
            got.append(scores(answer, body))
            samples.append({"question": q["question"], "answer": answer})
        results[name] = {"chinese": sum(c for c, _ in got) / len(got), "grounded": sum(g for _, g in got) / len(got),
                         "s_per_answer": round((time.perf_counter() - started) / len(got), 2), "samples": samples[:3]}
    print(f"{'answers by':<18} {'chinese':>8} {'grounded':>9} {'s/answer':>9}   ({len(questions)} questions)")
    for name, r in results.items():
        print(f"{name:<18} {r['chinese']:>8.0%} {r['grounded']:>9.0%} {r['s_per_answer']:>9.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
