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

MAX_SENTENCES = 5
MAX_WORDS = 80  # English replies: what a person reads at a glance
MAX_CHARS = 150  # Chinese replies
LEAD_BONUS = 0.08  # the article's first sentence
KEEP_RATIO = 0.0  # sentences by score until the length budget is spent (raise to keep only strong ones)
MAX_QUESTIONS = 4  # questions of one turn searched on their own (a turn of 2,000 "?" costs no more)
SECOND_ARTICLE_SENTENCES = 2  # from an article that answers a second question in the turn

# A sentence ends at . ! ? followed by a space and not inside a number ("$9.90"), an
# abbreviation ("e.g."), or a web address; or at Chinese 。！？；.
_EN_END = re.compile(r"(?<!\b[A-Za-z]\.[A-Za-z])(?<!\be\.g)(?<!\bi\.e)(?<![0-9]\.[0-9])([.!?])[\"”')\]]*\s+(?=[\"“'(\[A-Z0-9])")
_ZH_END = re.compile(r"(?<=[。！？；])")
_CJK_END = re.compile(r"[\u3400-\u9fff？]$")
# where a turn's second question starts: after ? ？ ; ；, or at ", and" / "and what|when|how…" / Chinese "，还有"
_CLAUSE = re.compile(r"(?<=[?？;；])|,?\s+and\s+(?=(?:what|when|where|how|can|could|do|does|is|are|will|why|who)\b)|[，,](?=还有|另外|那|如果不行|不行的话)",
                     re.IGNORECASE)


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
    # An article's own question ("Didn't get the code?") is a heading for the sentence
    # after it: alone it answers nothing.
    merged: list[str] = []
    for sentence in out:
        if merged and merged[-1].endswith(("?", "？")):
            merged[-1] += ("" if _CJK_END.search(merged[-1]) else " ") + sentence
        else:
            merged.append(sentence)
    return merged


def clauses(question: str) -> list[str]:
    """The questions inside one customer turn: "How do I return it? When is the refund?"
    and "How do I delete my account, and what happens to my gift card?" are two each."""
    parts = [p.strip() for p in _CLAUSE.split(question) if p and p.strip()]
    return [p for p in parts if len(terms(p)) >= 1] or [question]


def _idf(question_terms: set[str], sentences: Sequence[list[str]]) -> dict[str, float]:
    n = len(sentences) + 1
    return {t: math.log(1 + n / (1 + sum(t in s for s in sentences))) for t in question_terms}


def _coverage(q: set[str], s: set[str], idf: dict[str, float]) -> float:
    total = sum(idf[t] for t in q)
    return sum(idf[t] for t in q & s) / total if total else 0.0


def select(question: str, hits: Sequence[Hit], *, embed=None, max_sentences: int = MAX_SENTENCES,
           also: Sequence[tuple[str, Hit]] = ()) -> list[Selected]:
    """The sentences of `hits[0]` that answer `question`, then for each (clause, article)
    in `also` (a second question in the turn that another article answers, see
    `clauses`) the sentences of that article that answer the clause. `embed`: texts ->
    normalised vectors (None: lexical only). In article order, the first article first."""
    if not hits:
        return []
    parts = [(question, hits[0], max_sentences)]
    seen = {hits[0].id}
    for clause, hit in also:
        if hit.id not in seen:
            seen.add(hit.id)
            parts.append((clause, hit, SECOND_ARTICLE_SENTENCES))
    chosen: list[Selected] = []
    for query, hit, limit in parts:
        chosen += _best_sentences(query, hit, embed=embed, limit=limit)
    order = {hit.id: n for n, (_, hit, _) in enumerate(parts)}
    return sorted(chosen, key=lambda s: (order[s.hit.id], s.position))


def other_questions(question: str, first: Hit, search) -> list[tuple[str, Hit]]:
    """(clause, article) for each question inside the turn (`clauses`) that an article
    other than `first` answers best. `search`: text -> hits that pass the threshold."""
    parts = clauses(question)[:MAX_QUESTIONS]
    if len(parts) < 2:
        return []
    out = []
    for clause in parts:
        found = search(clause)
        if found and found[0].id != first.id and all(found[0].id != h.id for _, h in out):
            out.append((clause, found[0]))
    return out


def _best_sentences(query: str, hit: Hit, *, embed, limit: int) -> list[Selected]:
    q = set(terms(query))
    sentences = split_sentences(hit.body)
    if not sentences:
        return []
    sentence_terms = [set(terms(s)) for s in sentences]
    idf = _idf(q, sentence_terms)
    similarity = np.zeros(len(sentences))
    if embed is not None:
        vectors = embed([query] + sentences)
        similarity = np.clip(vectors[1:] @ vectors[0], 0.0, 1.0)
    scored = []
    for position, sentence in enumerate(sentences):
        lexical = _coverage(q, sentence_terms[position], idf)
        score = (0.5 * lexical + 0.5 * float(similarity[position])) if embed is not None else lexical
        scored.append(Selected(hit, sentence, score + (LEAD_BONUS if position == 0 else 0.0), position))
    best = max(scored, key=lambda s: s.score)
    return [s for s in sorted(scored, key=lambda s: -s.score)
            if s is best or s.score >= KEEP_RATIO * best.score][:limit]


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
