"""Knowledge-base articles, keyed by the id given in their source file.

`embedding` holds the article's vector as raw float32 bytes (`numpy.ndarray.tobytes()`);
storage does not interpret it. Re-importing an article with a changed title or body
drops a stale embedding unless a new one is passed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from storage.models import KbArticle

_UNSET = object()


def upsert_kb_article(
    session: Session,
    *,
    article_id: str,
    title: str,
    body: str,
    language: str = "en",
    tags: Sequence[str] | None = None,
    embedding: bytes | None | object = _UNSET,
    embedding_model: str | None = None,
) -> KbArticle:
    """Insert the article or update the one with this id. Leaving `embedding` out keeps
    the stored one if title and body are unchanged, and clears it otherwise.
    `embedding_model`: the encoder that made `embedding`."""
    article = session.get(KbArticle, article_id)
    if article is None:
        article = KbArticle(
            id=article_id,
            title=title,
            body=body,
            language=language,
            tags=list(tags or []),
            embedding=None if embedding is _UNSET else embedding,
            embedding_model=None if embedding is _UNSET else embedding_model,
        )
        session.add(article)
    else:
        text_changed = (article.title, article.body) != (title, body)
        article.title = title
        article.body = body
        article.language = language
        article.tags = list(tags or [])
        if embedding is not _UNSET:
            article.embedding = embedding
            article.embedding_model = embedding_model
        elif text_changed:
            article.embedding = None
            article.embedding_model = None
    session.flush()
    return article


def get_kb_article(session: Session, *, article_id: str) -> KbArticle | None:
    return session.get(KbArticle, article_id)


def list_kb_articles(
    session: Session, *, language: str | None = None, limit: int | None = None
) -> list[KbArticle]:
    """Articles ordered by id, optionally in one language."""
    query = sa.select(KbArticle)
    if language is not None:
        query = query.where(KbArticle.language == language)
    query = query.order_by(KbArticle.id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def delete_kb_article(session: Session, *, article_id: str) -> bool:
    """False if there was no such article."""
    article = session.get(KbArticle, article_id)
    if article is None:
        return False
    session.delete(article)
    session.flush()
    return True
