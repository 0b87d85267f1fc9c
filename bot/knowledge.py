"""Knowledge-base articles: reading them from files and importing them into storage.

A file is JSONL (one article per line: id, title, language, body, optional tags) or
Markdown (one article; an optional front-matter block gives id, title, language and tags,
else the id is the file name, the title the first `# ` heading and the language detected).
Importing upserts by id and stores each article's embedding, so retrieval never embeds
the knowledge base at serve time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Protocol

import numpy as np
from sqlalchemy.orm import Session

from core.errors import InputError
from bot.language import detect_language

DEMO_KB_DIR = Path(__file__).parent / "demo_kb"
_ID = re.compile(r"^[A-Za-z0-9][\w.\-]{0,254}$")
MAX_BODY_CHARS = 20_000


@dataclass
class Article:
    id: str
    title: str
    body: str
    language: str
    tags: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return f"{self.title}\n{self.body}"


class Embedder(Protocol):
    name: str

    def embed(self, texts: list[str]) -> np.ndarray: ...  # (n, d) float32, rows L2-normalised


def _article(raw: dict, where: str) -> Article:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a JSON object with id, title, body")
    missing = [k for k in ("id", "title", "body") if not str(raw.get(k) or "").strip()]
    if missing:
        raise InputError(f"{where}: missing {', '.join(missing)}")
    article_id = str(raw["id"]).strip()
    if not _ID.match(article_id):
        raise InputError(f"{where}: id {article_id!r} must be letters, digits, '.', '_' or '-' (max 255)")
    body = str(raw["body"]).strip()
    if len(body) > MAX_BODY_CHARS:
        raise InputError(f"{where}: body has {len(body)} characters; the limit is {MAX_BODY_CHARS}: split the article")
    tags = raw.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InputError(f"{where}: tags must be a list of strings")
    language = str(raw.get("language") or "").strip() or detect_language(f"{raw['title']} {body}")
    return Article(article_id, str(raw["title"]).strip(), body, language, tags)


def _front_matter(text: str) -> tuple[dict, str]:
    if not text.startswith("---"):
        return {}, text
    end = text.find("\n---", 3)
    if end < 0:
        return {}, text
    import yaml

    try:
        meta = yaml.safe_load(text[3:end]) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"bad front matter: {exc}") from exc
    return (meta if isinstance(meta, dict) else {}), text[end + 4:].lstrip("\n")


def read_articles(path: str | Path) -> list[Article]:
    """Articles from one .jsonl or .md file; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    if path.suffix.lower() in (".jsonl", ".json"):
        articles = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
            articles.append(_article(raw, f"{path}:{n}"))
        if not articles:
            raise InputError(f"{path}: no articles")
        return articles
    if path.suffix.lower() in (".md", ".markdown"):
        try:
            meta, body = _front_matter(text)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from exc
        title = meta.get("title")
        if not title:
            heading = re.search(r"^#\s+(.+)$", body, re.MULTILINE)
            title = heading.group(1).strip() if heading else path.stem
            if heading:
                body = (body[: heading.start()] + body[heading.end():]).strip()
        raw = {"id": meta.get("id") or path.stem, "title": title, "body": body,
               "language": meta.get("language"), "tags": meta.get("tags")}
        return [_article(raw, str(path))]
    raise InputError(f"{path}: unknown format {path.suffix!r}; use .jsonl or .md")


def read_article_files(paths: Iterable[str | Path]) -> list[Article]:
    """Articles from files and directories (their .jsonl/.md files); ids must be unique."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in (".jsonl", ".md", ".markdown")))
        else:
            files.append(p)
    articles: list[Article] = []
    seen: dict[str, Path] = {}
    for f in files:
        for a in read_articles(f):
            if a.id in seen:
                raise InputError(f"{f}: article id {a.id!r} also in {seen[a.id]}")
            seen[a.id] = f
            articles.append(a)
    return articles


def import_articles(session: Session, articles: list[Article], embedder) -> int:
    """Upsert the articles with their embeddings, each made by the encoder of its language
    (`embedder`: one encoder, a `bot.retrieval.Embedders`, or None); returns how many were
    written."""
    from storage.repositories.kb_articles import upsert_kb_article

    route = getattr(embedder, "for_language", None)
    encoders = [route(a.language) if route else embedder for a in articles]
    vectors: dict[int, np.ndarray] = {}
    for encoder in {id(e): e for e in encoders if e is not None}.values():
        members = [i for i, e in enumerate(encoders) if e is encoder]
        vectors.update(zip(members, encoder.embed([articles[i].text for i in members])))
    for i, a in enumerate(articles):
        kwargs = ({"embedding": vectors[i].astype(np.float32).tobytes(), "embedding_model": encoders[i].name}
                  if i in vectors else {})
        upsert_kb_article(session, article_id=a.id, title=a.title, body=a.body, language=a.language,
                          tags=a.tags, **kwargs)
    return len(articles)
