"""Grounded answers: the sentences of the retrieved article(s) that answer *this*
question, framed the way a support agent would say them.

    select(question, hits)  -> the best sentences, in article order (a second article
                               joins when the question asks something the first does not
                               cover, e.g. "how do I return it and when is the refund?")
    compose(selected, ...)  -> the reply: an apology first for an upset customer, then
                               the sentences; at most MAX_WORDS words (MAX_CHARS for Chinese)

Each sentence is scored against the question by idf-weighted term overlap (the
retrieval's own terms: stemmed English words with synonyms folded, Chinese character
bigrams) and, where an embedder reads the language, cosine similarity; the article's
first sentence gets a small bonus, since articles lead with their main answer. Every
word of the reply comes from the knowledge base or from the fixed texts in
bot.prompting, so it cannot state a fact the article does not.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from bot.retrieval import Hit, terms

MAX_SENTENCES = 3
MAX_WORDS = 80  # English replies: what a person reads at a glance
MAX_CHARS = 150  # Chinese replies
LEAD_BONUS = 0.08  # the article's first sentence
KEEP_RATIO = 0.55  # other sentences stay if they score at least this share of the best
SECOND_ARTICLE_RATIO = 0.7  # a second article is considered when it scores this share of the first

# A sentence ends at . ! ? followed by a space and not inside a number ("$9.90"), an
# abbreviation ("e.g."), or a web address; or at Chinese 。！？；.
_EN_END = re.compile(r"(?<!\b[A-Za-z]\.[A-Za-z])(?<!\be\.g)(?<!\bi\.e)(?<![0-9]\.[0-9])([.!?])[\"”')\]]*\s+(?=[\"“'(\[A-Z0-9])")
_ZH_END = re.compile(r"(?<=[。！？；])")


@dataclass(frozen=True)
class Selected:
    hit: Hit
    text: str
    score: float
    position: int  # the sentence's index in its article


def split_sentences(text: str) -> list[str]:
    """An article's sentences, in order (English and Chinese, mixed too)."""
    out = []
    for line in re.split(r"\n+", text):
        for part in _ZH_END.split(line):
            pieces, start = [], 0
            for m in _EN_END.finditer(part):
                pieces.append(part[start:m.end(1)])
                start = m.end()
            pieces.append(part[start:])
            out += [p.strip() for p in pieces if p.strip()]
    return out


def _idf(question_terms: set[str], sentences: Sequence[list[str]]) -> dict[str, float]:
    n = len(sentences) + 1
    return {t: math.log(1 + n / (1 + sum(t in s for s in sentences))) for t in question_terms}


def _coverage(q: set[str], s: set[str], idf: dict[str, float]) -> float:
    total = sum(idf[t] for t in q)
    return sum(idf[t] for t in q & s) / total if total else 0.0


def select(question: str, hits: Sequence[Hit], *, embed=None, max_sentences: int = MAX_SENTENCES) -> list[Selected]:
    """The sentences of `hits` (best first, as retrieved) that answer `question`. `embed`:
    texts -> normalised vectors (None: lexical only)."""
    if not hits:
        return []
    q = set(terms(question))
    candidates = [hits[0]] + [h for h in hits[1:2] if h.score >= SECOND_ARTICLE_RATIO * hits[0].score]
    per_hit = [(h, split_sentences(h.body)) for h in candidates]
    all_sentences = [s for _, ss in per_hit for s in ss]
    sentence_terms = [set(terms(s)) for s in all_sentences]
    idf = _idf(q, sentence_terms)
    similarity = np.zeros(len(all_sentences))
    if embed is not None and all_sentences:
        vectors = embed([question] + all_sentences)
        similarity = np.clip(vectors[1:] @ vectors[0], 0.0, 1.0)
    scored: list[Selected] = []
    i = 0
    for h, sentences in per_hit:
        for position, sentence in enumerate(sentences):
            lexical = _coverage(q, sentence_terms[i], idf)
            score = (0.5 * lexical + 0.5 * float(similarity[i])) if embed is not None else lexical
            scored.append(Selected(h, sentence, score + (LEAD_BONUS if position == 0 else 0.0), position))
            i += 1
    first = [s for s in scored if s.hit is hits[0]]
    best = max(first, key=lambda s: s.score)
    chosen = [s for s in sorted(first, key=lambda s: -s.score)
              if s is best or s.score >= KEEP_RATIO * best.score][:max_sentences]
    # a second article, if it covers question terms the chosen sentences leave out
    covered = set().union(*(set(terms(s.text)) for s in chosen))
    missing = q - covered
    if len(candidates) > 1 and missing and _coverage(q, q - covered, idf) >= 0.3:
        second = [s for s in scored if s.hit is candidates[1]]
        useful = max(second, key=lambda s: _coverage(missing, set(terms(s.text)), idf), default=None)
        if useful is not None and _coverage(missing, set(terms(useful.text)), idf) >= 0.5:
            chosen = chosen[: max_sentences - 1] + [useful]
    order = {id(h): n for n, h in enumerate(candidates)}
    return sorted(chosen, key=lambda s: (order[id(s.hit)], s.position))


def compose(selected: Sequence[Selected], *, language: str, upset: bool, apology: str = "") -> str:
    """The reply: an apology first when the customer is upset, then the selected sentences,
    within MAX_WORDS (English) or MAX_CHARS (Chinese); the best sentence always stays."""
    chinese = language in ("zh", "ja")
    joiner = "" if chinese else " "
    parts = [s.text for s in selected]
    if not parts:
        return ""

    def size(texts: list[str]) -> int:
        text = joiner.join(texts)
        return len(text) if chinese else len(text.split())

    limit = MAX_CHARS if chinese else MAX_WORDS
    ranked = sorted(range(len(parts)), key=lambda i: -selected[i].score)
    keep = set(ranked)
    for i in reversed(ranked[1:]):  # drop the weakest until it fits
        if size([parts[j] for j in sorted(keep)]) <= limit:
            break
        keep.discard(i)
    body = joiner.join(parts[j] for j in sorted(keep))
    return (apology + joiner + body) if upset and apology else body
