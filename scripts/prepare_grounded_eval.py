"""The grounded evaluation file the chat gate of `supportbot retrain` reads
(SUPPORTBOT_RETRAIN_CHAT_EVAL; finetune/answer_quality.py), from public reading
comprehension data, never from the demo knowledge base:

    python scripts/prepare_grounded_eval.py --datasets ../shared/datasets [--en 60 --zh 60] \
        [--out data/grounded-eval.jsonl]

- English: answerable SQuAD 2.0 dev questions (squad2/dev-v2.0.json);
- Chinese: CMRC 2018 dev questions (cmrc2018/cmrc2018_dev.json).

Each row's passage is the sentence holding the gold answer and its neighbours, added
nearest first while the passage stays within ~60 words (English) / 150 characters
(Chinese), the size of the bot's own grounded replies; the one fact is the gold answer
(its distinct reference texts as alternatives). Answers longer than 8 words / 20
characters are left out (a reply rarely repeats a whole clause word for word), and one
question per paragraph is taken, a seeded sample (SEED), so two runs write the same file.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.grounding import split_sentences  # noqa: E402 - the bot's own sentence splitter

SEED = 2026
MAX_WORDS = 60  # English passage
MAX_CHARS = 150  # Chinese passage
MAX_ANSWER_WORDS, MAX_ANSWER_CHARS = 8, 20


def _size(text: str, language: str) -> int:
    return len(text) if language == "zh" else len(text.split())


def trim_passage(context: str, answer: str, start: int, language: str) -> str | None:
    """The sentence(s) around the answer at `start` (or its first occurrence), within the
    size limit; None when the answer cannot be placed or its sentence alone is too long."""
    if start < 0 or context[start:start + len(answer)] != answer:
        start = context.find(answer)
        if start < 0:
            return None
    sentences, offset, spans = split_sentences(context), 0, []
    for sentence in sentences:  # each sentence's character span in the context
        at = context.find(sentence, offset)
        spans.append((at, at + len(sentence)))
        offset = max(offset, at + len(sentence)) if at >= 0 else offset
    hit = [i for i, (a, b) in enumerate(spans) if a >= 0 and a < start + len(answer) and b > start]
    if not hit:
        return None
    first, last = hit[0], hit[-1]
    joiner = "" if language == "zh" else " "
    limit = MAX_CHARS if language == "zh" else MAX_WORDS
    if _size(joiner.join(sentences[first:last + 1]), language) > limit * 1.5:
        return None
    grew = True
    while grew:
        grew = False
        for lo, hi in ((first, last + 1), (first - 1, last)):  # next sentence first, then the one before
            if 0 <= lo and hi < len(sentences) and _size(joiner.join(sentences[lo:hi + 1]), language) <= limit:
                first, last, grew = lo, hi, True
                break
    passage = joiner.join(sentences[first:last + 1])
    return passage if answer in passage else None


def candidates(path: Path, language: str) -> list[dict]:
    """One row per paragraph that has a usable question (the paragraph's first)."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    rows = []
    for article in data:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if qa.get("is_impossible") or not qa.get("answers"):
                    continue
                answers = list(dict.fromkeys(a["text"].strip() for a in qa["answers"] if a["text"].strip()))
                gold = qa["answers"][0]
                if not answers or _size(answers[0], language) > (MAX_ANSWER_CHARS if language == "zh"
                                                                 else MAX_ANSWER_WORDS):
                    continue
                passage = trim_passage(paragraph["context"], gold["text"].strip(), gold["answer_start"], language)
                if passage is None:
                    continue
                rows.append({"id": qa["id"], "language": language, "title": article.get("title") or "",
                             "question": qa["question"].strip(), "passage": passage,
                             "facts": [[a for a in answers if a in passage] or answers[:1]],
                             "source": path.parent.name})
                break
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--en", type=int, default=60, help="English rows (SQuAD 2.0 dev)")
    parser.add_argument("--zh", type=int, default=60, help="Chinese rows (CMRC 2018 dev)")
    parser.add_argument("--out", default=str(ROOT / "data" / "grounded-eval.jsonl"))
    args = parser.parse_args(argv)
    root = Path(args.datasets)
    out_rows = []
    for n, path, language in ((args.en, root / "squad2" / "dev-v2.0.json", "en"),
                              (args.zh, root / "cmrc2018" / "cmrc2018_dev.json", "zh")):
        found = candidates(path, language)
        if len(found) < n:
            parser.error(f"{path}: {len(found)} usable questions, {n} asked for")
        out_rows += random.Random(SEED).sample(found, n)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out_rows), encoding="utf-8")
    print(f"{out}: {args.en} English (SQuAD 2.0 dev) + {args.zh} Chinese (CMRC 2018 dev) rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
