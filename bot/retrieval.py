"""Retrieval from the knowledge base: a hybrid of embeddings and BM25, in two steps.

1. Rank: each candidate by how far it stands out from the other articles of the
   query's language, for the encoder and for the words,

       rank = 0.8 * z(cosine) + 0.2 * z(lexical)      (z: standardised over the candidates)

   Encoders squeeze similarities into a narrow band (multilingual-e5 puts almost every
   Chinese article at 0.83-0.91), so the raw cosine ranks poorly; the standardised one
   does not care where the band lies.
2. Decide: the score a hit carries (0..1, one threshold decides "found an answer") is
   absolute, since "stands out from the rest" also holds for the best of bad matches:

       score = 0.9 * (cosine - floor) / (1 - floor)  +  0.1 * lexical

   `floor` is the encoder's unrelated-text similarity (0 for MiniLM, 0.78 for e5).
   lexical = 0.5 * coverage + 0.5 * bm25 / max_bm25: `coverage` is the idf-weighted share
   of the query's terms that occur in the article (absolute: a query about the weather
   covers nothing), `bm25 / max_bm25` ranks among the candidates (Okapi BM25, k1=1.2,
   b=0.75).

Each language is read by its own encoder (`Embedders`): MiniLM for English,
multilingual-e5-small (`me5-small`, with its "query: " / "passage: " prefixes) for
Chinese and every other language MiniLM does not read. Articles are embedded by the
encoder of their language; a language without an encoder ranks by the lexical part
alone, over character unigrams and bigrams for Chinese. The weights were chosen on the
tune half of scripts/data/answers (README "The dialogue: measured").
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from bot.knowledge import Article, Embedder
from bot.language import detect_language

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
STOPWORDS_EN = frozenset(
    "a an the and or but if of to in on at for from by with about as is are was were be been being do does did "
    "i me my we our you your he she it its they them their this that these those there here what which who whom "
    "how when where why can could would should will shall may might must have has had not no so than too very "
    "just please hi hello hey thanks thank any some get got im i'm it's dont don't".split()
)
STOPCHARS_ZH = frozenset("的了吗呢吧啊呀是我你他她它们在有和就都也还要请问这那个么什怎")
RANK_LEXICAL = 0.2  # share of the standardised lexical score in the ranking (the rest: the encoder's)
SCORE_EMBEDDING = 0.9  # share of the encoder's similarity in a hit's score (the rest: lexical)
INTENT_BOOST = 0.15  # added (times the intent's confidence) to the score of articles tagged with the turn's intent
INTENT_RANK_BOOST = 0.5  # the same, in the ranking's standard deviations

# Customers and articles name the same things differently: stems mapped to one term.
_SAME_EN = {
    "ship": ("shipp", "shipment", "deliver", "delivery", "deliveri", "courier", "dispatch"),
    "package": ("packag", "parcel", "box"),
    "return": ("send back", "sent back", "give back"),
    "invoice": ("receipt", "bill", "vat"),
    "cancel": ("cancell",),
    "pay": ("paid", "payment", "charg", "charge"),
    "member": ("membership", "subscription", "subscrib"),
    "coupon": ("voucher", "promo", "discount"),
    "damag": ("broken", "broke", "crack", "defect", "faulty", "smash"),
    "password": ("pwd", "passcode"),
}
_CANON = {v: k for k, vs in _SAME_EN.items() for v in vs if " " not in v}
_PHRASES = [(v, re.compile(rf"\b{re.escape(v)}\b"), k) for k, vs in _SAME_EN.items() for v in vs if " " in v]


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith(("ses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    for suffix in ("ing", "ed", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


@functools.lru_cache(maxsize=1 << 16)
def _term(word: str) -> str | None:
    """A word's index term (None for a stopword); cached: a knowledge base repeats its words."""
    if word in STOPWORDS_EN:
        return None
    stem = _stem(word)
    return _CANON.get(stem, stem)


def terms(text: str) -> list[str]:
    """Index terms: stemmed English words without stopwords, synonyms folded; Chinese
    character bigrams (single characters carry too little meaning to match on)."""
    text = text.lower()
    for phrase, pattern, canon in _PHRASES:
        if phrase in text:  # the plain test first: most texts hold none of the phrases
            text = pattern.sub(canon, text)
    out = [t for t in map(_term, _WORD.findall(text)) if t is not None]
    for run in _CJK.findall(text):
        if len(run) == 1:
            out.append(run)
        out.extend(run[i : i + 2] for i in range(len(run) - 1) if not set(run[i : i + 2]) <= STOPCHARS_ZH)
    return out


@dataclass
class Hit:
    id: str
    title: str
    body: str
    language: str
    score: float

    def public(self) -> dict:
        return {"id": self.id, "title": self.title, "score": round(self.score, 4)}


class Embedders:
    """The encoders of a knowledge base: each language is read by the first of them that
    reads it (`reads`), e.g. MiniLM for English and multilingual-e5-small for the rest."""

    def __init__(self, *embedders):
        self.embedders = [e for e in embedders if e is not None]

    def for_language(self, language: str):
        return next((e for e in self.embedders if reads(e, language)), None)

    @property
    def name(self) -> str:
        return "+".join(e.name for e in self.embedders)

    def __bool__(self) -> bool:
        return bool(self.embedders)


def as_embedders(embedder) -> Embedders:
    """An `Embedders` from one encoder, several, or none."""
    if isinstance(embedder, Embedders):
        return embedder
    return Embedders(embedder)


def reads(embedder, language: str) -> bool:
    """Whether `embedder` was trained on `language` (None: every language)."""
    languages = getattr(embedder, "languages", ("en",))
    return embedder is not None and (languages is None or language in languages)


class MiniLMEmbedder:
    """Sentence embeddings: mean-pooled, L2-normalised hidden states of an encoder.
    e5 models (multilingual-e5-small) get their "query: " / "passage: " prefixes and read
    every language; others are taken as English-only sentence-transformers."""

    def __init__(self, name: str, tokenizer, model, max_length: int = 256, *, e5: bool = False):
        self.name, self.tokenizer, self.model, self.max_length = name, tokenizer, model, max_length
        self.passage_prefix, self.query_prefix = ("passage: ", "query: ") if e5 else ("", "")
        self.languages = None if e5 else ("en",)
        # cosine of unrelated texts: e5 models put almost everything above 0.75
        self.cosine_floor = 0.78 if e5 else 0.0
        self._lock = threading.Lock()

    @classmethod
    def load(cls, ref: str, cache_dir: Path, *, dtype: str = "fp32") -> "MiniLMEmbedder":
        from transformers import AutoModel, AutoTokenizer

        from bot.classifier import quiet_transformers
        from core.errors import ModelLoadError
        from core.model_refs import resolve

        resolved = resolve(ref, cache_dir)
        try:
            tokenizer = AutoTokenizer.from_pretrained(resolved.path, local_files_only=resolved.local)
            with quiet_transformers():
                model = AutoModel.from_pretrained(resolved.path, local_files_only=resolved.local)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load embedding model {ref!r}: {exc}") from exc
        e5 = "e5" in ref.lower().replace("-", "").replace("_", "") or getattr(model.config, "model_type", "") == "xlm-roberta"
        from bot.quantization import cast_model

        return cls(ref, tokenizer, cast_model(model.eval(), dtype), e5=e5)

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Passages (articles, sentences)."""
        return self._encode([self.passage_prefix + t for t in texts], batch_size)

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode([self.query_prefix + text], 1)[0]

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        import torch

        out = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                enc = self.tokenizer(texts[start : start + batch_size], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt")
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).float().numpy())
        if not out:
            return np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)


class KnowledgeIndex:
    """An in-memory index over the articles; rebuilt when the knowledge base changes."""

    k1, b = 1.2, 0.75

    def __init__(self, articles: Sequence[Article], vectors, embedder: "Embedder | Embedders | None"):
        """`vectors`: (n, d) normalised rows made by `embedder` (one encoder), or
        {encoder name: (article indices, (m, d) rows)} when `embedder` is an `Embedders`;
        None: lexical only."""
        self.articles = list(articles)
        self.embedders = as_embedders(embedder)
        if vectors is None:
            self._vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        elif isinstance(vectors, dict):
            self._vectors = dict(vectors)
        else:
            self._vectors = {getattr(embedder, "name", None): (np.arange(len(self.articles)), vectors)}
        self._embedded_by: dict[str, np.ndarray] = {}  # encoder name -> which articles it embedded
        for name, (rows, _) in self._vectors.items():
            self._embedded_by[name] = np.zeros(len(self.articles), dtype=bool)
            self._embedded_by[name][rows] = True
        counts = [Counter(terms(a.text)) for a in self.articles]  # per article; dropped after the build
        self._lengths = np.array([sum(d.values()) for d in counts], dtype=np.float32)
        self._avg_len = float(self._lengths.mean()) if len(counts) else 1.0
        df: Counter[str] = Counter()
        for d in counts:
            df.update(d.keys())
        n = len(counts)
        self._idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
        # term -> (doc indices, term frequencies): BM25 touches only documents with the term.
        # One stable sort of every (term, document) pair by term, then a slice per term.
        term_id = {t: j for j, t in enumerate(df)}
        pairs = [t for d in counts for t in d]
        order = np.argsort(np.fromiter(map(term_id.__getitem__, pairs), dtype=np.int64, count=len(pairs)),
                           kind="stable")  # documents stay in index order within a term
        docs = np.repeat(np.arange(n), [len(d) for d in counts])[order]
        tfs = np.fromiter((c for d in counts for c in d.values()), dtype=np.float32, count=len(pairs))[order]
        ends = np.cumsum([df[t] for t in term_id], dtype=np.int64).tolist()
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {
            t: (docs[end - df[t]:end], tfs[end - df[t]:end]) for t, end in zip(term_id, ends)}
        self._language = np.array([a.language for a in self.articles])
        self._tagged: dict[str, np.ndarray] = {}
        for i, a in enumerate(self.articles):
            for tag in a.tags:
                self._tagged.setdefault(tag, np.zeros(len(self.articles), dtype=np.float32))[i] = 1.0

    def __len__(self) -> int:
        return len(self.articles)

    def _lexical(self, query_terms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.articles)
        bm25 = np.zeros(n, dtype=np.float32)
        covered = np.zeros(n, dtype=np.float32)
        unique = set(query_terms)
        # A term unseen in the knowledge base still counts against coverage, at the idf
        # of a term that occurs in no document.
        unseen_idf = math.log(1 + (n + 0.5) / 0.5) if n else 1.0
        total = sum(self._idf.get(t, unseen_idf) for t in unique) or 1.0
        for t in unique:
            posting = self._postings.get(t)
            if posting is None:
                continue
            idx, tf = posting
            idf = self._idf[t]
            norm = tf + self.k1 * (1 - self.b + self.b * self._lengths[idx] / self._avg_len)
            bm25[idx] += idf * tf * (self.k1 + 1) / norm
            covered[idx] += idf
        return bm25, covered / total

    def embedded(self) -> dict[str, int]:
        """How many articles each encoder embedded."""
        return {name: len(rows) for name, (rows, _) in self._vectors.items()}

    def embedder_for(self, language: str):
        """The encoder that reads `language` and embedded its articles (None: lexical only)."""
        encoder = self.embedders.for_language(language)
        return encoder if encoder is not None and getattr(encoder, "name", None) in self._vectors else None

    def search(self, query: str, *, language: str | None = None, k: int = 3, intent=None) -> list[Hit]:
        """The k best articles for the query, best first. With a language, articles in
        that language are preferred; the others are searched only if it has none.
        `intent` (label, score) boosts the articles tagged with it."""
        if not self.articles or not query.strip():
            return []
        language = language or detect_language(query)
        mask = self._language == language
        if not mask.any():
            mask = np.ones(len(self.articles), dtype=bool)
        bm25, coverage = self._lexical(terms(query))
        top = float(bm25[mask].max()) if mask.any() else 0.0
        lexical = 0.5 * coverage + 0.5 * (bm25 / top if top > 0 else 0.0)
        score, rank = lexical, lexical
        encoder = self.embedder_for(language)
        if encoder is not None:
            rows, matrix = self._vectors[encoder.name]
            embedded = self._embedded_by[encoder.name]
            mask = mask & embedded if (mask & embedded).any() else mask
            cosine = np.zeros(len(self.articles), dtype=np.float32)
            cosine[rows] = matrix @ embed_query(encoder, query)
            floor = getattr(encoder, "cosine_floor", 0.0)
            similarity = np.clip((cosine - floor) / (1.0 - floor), 0.0, 1.0)
            score = SCORE_EMBEDDING * similarity + (1 - SCORE_EMBEDDING) * lexical
            rank = (1 - RANK_LEXICAL) * _standardised(cosine, mask) + RANK_LEXICAL * _standardised(lexical, mask)
        if intent is not None and intent.label in self._tagged:
            tagged = float(intent.score) * self._tagged[intent.label]
            if encoder is not None:
                # The intent orders the candidates but does not make a turn answerable: an
                # intent model names one of its intents for any text, out-of-scope ones too.
                rank = rank + INTENT_RANK_BOOST * tagged
            else:
                score = rank = score + INTENT_BOOST * tagged
        score = np.minimum(score, 1.0)
        order = top_k(np.where(mask, rank, -np.inf), k)
        return [Hit(a.id, a.title, a.body, a.language, float(score[i]))
                for i in order if mask[i] for a in [self.articles[i]]]


def _standardised(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(values - mean) / std over the candidates in `mask`."""
    candidates = values[mask]
    return (values - candidates.mean()) / (candidates.std() + 1e-6)


def embed_query(embedder, text: str) -> np.ndarray:
    """A query's vector (with the encoder's query prefix where it has one)."""
    if hasattr(embedder, "embed_query"):
        return embedder.embed_query(text)
    return embedder.embed([text])[0]


def top_k(score: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first, ties in index order: the first k of a
    stable argsort of -score, without sorting all of them (a full sort was most of a
    query's time at 100k articles)."""
    if k <= 0 or k >= len(score):
        return np.argsort(-score, kind="stable")[:k]
    neg = -score
    kth = np.partition(neg, k - 1)[k - 1]
    candidates = np.flatnonzero(neg <= kth)  # the k best and every tie of the k-th, in index order
    return candidates[np.argsort(neg[candidates], kind="stable")][:k]


def build_index(session, embedder: "Embedder | Embedders | None") -> KnowledgeIndex:
    """The index over every stored article, each embedded by its language's encoder
    (`embedder`: one encoder or an `Embedders`). Vectors that are missing or were made by
    another encoder are computed here and stored on the rows (the caller commits)."""
    from storage.repositories.kb_articles import list_kb_articles

    rows = list_kb_articles(session)
    articles = [Article(r.id, r.title, r.body, r.language, list(r.tags or [])) for r in rows]
    embedders = as_embedders(embedder)
    groups: dict[str, list[int]] = {}
    encoders = {}
    for i, r in enumerate(rows):
        encoder = embedders.for_language(r.language)
        if encoder is not None:
            groups.setdefault(encoder.name, []).append(i)
            encoders[encoder.name] = encoder
    vectors = {}
    for name, members in groups.items():
        # missing, or made by another encoder (rows older than the column have none recorded)
        stale = [i for i in members
                 if not rows[i].embedding or (rows[i].embedding_model is not None and rows[i].embedding_model != name)
                 or (rows[i].embedding_model is None and name is not None and _foreign(name))]
        fresh = dict(zip(stale, encoders[name].embed([articles[i].text for i in stale]))) if stale else {}
        for i, vector in fresh.items():  # stored, so the next start does not embed them again
            rows[i].embedding, rows[i].embedding_model = vector.astype(np.float32).tobytes(), name
        vecs = [fresh[i] if i in fresh else np.frombuffer(rows[i].embedding, dtype=np.float32) for i in members]
        if len({v.shape[0] for v in vecs}) == 1:
            vectors[name] = (np.array(members), np.stack(vecs))
    return KnowledgeIndex(articles, vectors if embedders else None, embedders)


def _foreign(name: str) -> bool:
    """Rows stored before encoders were recorded were made by the default encoder,
    MiniLM: any other encoder embeds them again."""
    return name != "minilm-l6"
