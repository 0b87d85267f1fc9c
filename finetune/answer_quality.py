"""Answer quality of a chat model on grounded questions: does its reply state the facts of
the passage it was given, and nothing the passage does not say?

    python -m finetune.answer_quality MODEL data/grounded-eval.jsonl [--max-rows N] [--json OUT]

Each row of the evaluation file (JSONL; scripts/prepare_grounded_eval.py writes one from
SQuAD 2.0 dev and CMRC 2018 dev):

    {"question": "...", "passage": "..." (or "sources": ["...", ...]), "title": "..." (optional),
     "facts": ["strings a correct reply must state", ...], "language": "en" | "zh"}

The reply is written the way the live bot writes a grounded answer (bot/dialogue.py
`_generate`): the system prompt of bot.prompting.system_message with the passage as the
one article, the question as the customer's turn, fitted to the model's window by
prompting.fit_context, generated greedily by bot.generation.LocalGenerator (at most
MAX_NEW_TOKENS). Scores:

- fact recall: facts found in the replies / facts expected (percent); a fact is found when
  its normalised text (`normalize`: NFKC, one kind of dash and quote, lower case, spaces
  collapsed and none next to Chinese) is inside the normalised reply. The same matching as
  scripts/eval_answers.py, which imports it from here;
- invented: percent of replies stating a number, amount, duration, contact or quoted name
  that neither the passage nor the question holds (bot.faithfulness.unsupported, the check
  the live bot applies to every generated reply).

`supportbot retrain` gates a chat candidate on these (finetune/retrain.py decide_chat):
higher fact recall, and no more invented replies than the active version (+ tolerance).
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Callable

MAX_NEW_TOKENS = 64  # a grounded answer's key fact comes early; 64 tokens ~ 45 English words
GENERATION_TIMEOUT_S = 120.0  # per reply, on a busy CPU

# ---- fact matching (shared with scripts/eval_answers.py) -------------------------------

DASHES = re.compile(r"[\u2010\u2011\u2012\u2013\u2014\u2015\u2212\uFE58\uFE63\uFF0D]")
CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_SPACE_BEFORE_CJK = re.compile(rf"\s+(?=[{CJK}\u3000-\u303f\uff00-\uffef“”‘’])")
_SPACE_AFTER_CJK = re.compile(rf"(?<=[{CJK}\u3000-\u303f\uff00-\uffef“”‘’])\s+")


def normalize(text: str) -> str:
    """For matching: NFKC (full-width digits and letters to ASCII), one kind of dash and
    quote, lower case, whitespace collapsed, and no spaces next to Chinese characters
    ("30 天" == "30天")."""
    text = unicodedata.normalize("NFKC", text or "")
    text = DASHES.sub("-", text)
    text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")
    text = re.sub(r"\s+", " ", text).strip().lower()
    text = _SPACE_BEFORE_CJK.sub("", text)
    return _SPACE_AFTER_CJK.sub("", text)


def fact_alternatives(fact) -> tuple[list[str], bool]:
    """A fact is a list of alternative strings, or {"any": [...], "paraphrase": true}
    (a fact the articles state in other words: exempt from --check-set)."""
    if isinstance(fact, dict):
        return list(fact.get("any") or fact.get("alternatives") or []), bool(fact.get("paraphrase"))
    if isinstance(fact, str):
        return [fact], False
    return list(fact), False


def fact_found(reply: str, fact) -> str | None:
    """The first alternative of `fact` that the reply contains (normalised), else None."""
    text = normalize(reply)
    for alt in fact_alternatives(fact)[0]:
        if alt.strip() and normalize(alt) in text:
            return alt
    return None


def match_facts(reply: str, facts: list) -> tuple[list[str], list[str]]:
    """(found, missed): each fact named by its first alternative."""
    found, missed = [], []
    for fact in facts:
        name = fact_alternatives(fact)[0][0]
        (found if fact_found(reply, fact) is not None else missed).append(name)
    return found, missed


# ---- the evaluation file ---------------------------------------------------------------

def read_rows(path: str | Path) -> list[dict]:
    """The rows of a grounded evaluation file, every problem reported at once."""
    from core.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file (scripts/prepare_grounded_eval.py writes one)")
    rows, problems = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {n}: not JSON ({exc.msg})")
            continue
        missing = [k for k in ("question", "facts") if not row.get(k)]
        if not (row.get("passage") or row.get("sources")):
            missing.append("passage (or sources)")
        if missing:
            problems.append(f"line {n}: no {', '.join(missing)}")
        rows.append(row)
    if problems or not rows:
        raise InputError(f"{path}: " + ("; ".join(problems[:10]) if problems else "no rows"))
    return rows


def row_sources(row: dict) -> list[str]:
    return list(row.get("sources") or [row["passage"]])


def grounded_messages(row: dict, count_tokens: Callable[[list[dict]], int], budget: int) -> list[dict]:
    """The messages the live bot sends the chat model for this question with this passage
    as the retrieved article (bot/dialogue.py `_generate`, a first turn)."""
    from bot import prompting
    from bot.retrieval import Hit

    language = row.get("language") or "en"
    hit = Hit(id=str(row.get("id", "eval")), title=row.get("title") or "", body="\n".join(row_sources(row)),
              language=language, score=1.0)
    messages = [{"role": "system", "content": prompting.system_message([hit], language=language, upset=False)},
                {"role": "user", "content": row["question"]}]
    return prompting.fit_context(messages, count_tokens, budget)


# ---- scoring ---------------------------------------------------------------------------

def score_reply(reply: str, row: dict) -> dict:
    """Facts found and missed, and the invented spans (bot.faithfulness, the live check:
    sources are the article's title and text, the customer's question is allowed)."""
    from bot.faithfulness import unsupported

    found, missed = match_facts(reply, row["facts"])
    title = row.get("title") or ""
    sources = [(title + "\n" if title else "") + "\n".join(row_sources(row))]
    return {"found": found, "missed": missed, "invented": unsupported(reply, sources, allowed=[row["question"]])}


def summarise(scored: list[dict]) -> dict:
    """fact_recall (percent of facts found), all_facts (percent of replies with every
    fact), invented (percent of replies with an invented span), n (replies)."""
    facts = sum(len(s["found"]) + len(s["missed"]) for s in scored)
    n = len(scored)
    return {"fact_recall": round(100 * sum(len(s["found"]) for s in scored) / facts, 2) if facts else 0.0,
            "all_facts": round(100 * sum(not s["missed"] for s in scored) / n, 2) if n else 0.0,
            "invented": round(100 * sum(bool(s["invented"]) for s in scored) / n, 2) if n else 0.0,
            "n": n}


def score_replies(rows: list[dict], replies: list[str]) -> dict:
    """The summary overall and per language, and each row's reply and findings."""
    scored = [score_reply(reply, row) for reply, row in zip(replies, rows, strict=True)]
    by_language: dict[str, list[dict]] = {}
    for row, s in zip(rows, scored):
        by_language.setdefault(row.get("language") or "en", []).append(s)
    return {**summarise(scored), "languages": {lang: summarise(s) for lang, s in sorted(by_language.items())},
            "replies": [{"question": r["question"], "reply": reply, **s}
                        for r, reply, s in zip(rows, replies, scored)]}


# ---- generation ------------------------------------------------------------------------

def generate_replies(ref: str, rows: list[dict], cache_dir: Path, *, max_new_tokens: int = MAX_NEW_TOKENS) -> list[str]:
    """The chat model's greedy reply to each row, through the live bot's local generator."""
    from bot.generation import GenerationParams, LocalGenerator

    generator = LocalGenerator.load(ref, cache_dir)
    params = GenerationParams(max_tokens=max_new_tokens, temperature=0.0, timeout_s=GENERATION_TIMEOUT_S)
    budget = generator.context_tokens - max_new_tokens
    try:
        return ["".join(generator.stream(grounded_messages(row, generator.count_tokens, budget), params)).strip()
                for row in rows]
    finally:
        generator.close()


def evaluate_answers(ref: str, data: str | Path, cache_dir: Path, *, max_rows: int = 0,
                     generate: Callable[..., list[str]] | None = None) -> dict:
    """Answer quality of a chat model (reference or adapter directory) on a grounded
    evaluation file; `max_rows`: the first N rows only; `generate`: (ref, rows, cache_dir)
    -> replies, default generate_replies."""
    rows = read_rows(data)
    if max_rows:
        rows = rows[:max_rows]
    replies = (generate or generate_replies)(ref, rows, cache_dir)
    return {"model": ref, "data": str(data), **score_replies(rows, replies)}


def main(argv: list[str] | None = None) -> int:
    import argparse

    from core.config import get_settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a chat model reference or chat adapter directory")
    parser.add_argument("data", help="grounded evaluation JSONL (scripts/prepare_grounded_eval.py)")
    parser.add_argument("--max-rows", type=int, default=0, help="the first N rows only (0: all)")
    parser.add_argument("--json", help="write the full result (every reply) here")
    args = parser.parse_args(argv)
    result = evaluate_answers(args.model, args.data, get_settings().model_cache_dir, max_rows=args.max_rows)
    if args.json:
        Path(args.json).write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    summary = {k: v for k, v in result.items() if k != "replies"}
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
