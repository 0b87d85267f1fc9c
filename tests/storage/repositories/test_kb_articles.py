from __future__ import annotations

import pytest

from storage.repositories import kb_articles as kb

VECTOR = bytes(range(16))


def _upsert(session, **overrides):
    fields = dict(
        article_id="shipping-times",
        title="Shipping times",
        body="Parcels arrive in 3-5 working days.",
        language="en",
        tags=["delivery"],
    )
    return kb.upsert_kb_article(session, **{**fields, **overrides})


def test_upsert_inserts_then_updates(session):
    created = _upsert(session, embedding=VECTOR)
    session.commit()
    first_updated_at = created.updated_at

    updated = _upsert(session, title="Delivery times", tags=["delivery", "shipping"])
    session.commit()
    session.expunge_all()

    loaded = kb.get_kb_article(session, article_id="shipping-times")
    assert loaded.title == "Delivery times"
    assert loaded.tags == ["delivery", "shipping"]
    assert loaded.created_at == created.created_at
    assert loaded.updated_at > first_updated_at
    assert updated.id == created.id == "shipping-times"
    assert len(kb.list_kb_articles(session)) == 1


def test_embedding_is_kept_replaced_or_dropped(session):
    _upsert(session, embedding=VECTOR)
    assert _upsert(session).embedding == VECTOR  # same text: still valid
    assert _upsert(session, body="Parcels arrive in 2 days.").embedding is None  # stale
    assert _upsert(session, embedding=b"\x01\x02").embedding == b"\x01\x02"
    session.commit()
    session.expunge_all()
    assert kb.get_kb_article(session, article_id="shipping-times").embedding == b"\x01\x02"


def test_unicode_round_trips(session):
    _upsert(session, article_id="退货", title="退货政策", body="30 天内可退货。", language="zh")
    session.commit()
    session.expunge_all()
    loaded = kb.get_kb_article(session, article_id="退货")
    assert (loaded.title, loaded.body, loaded.language) == ("退货政策", "30 天内可退货。", "zh")


def test_list_by_language_ordered_by_id(session):
    _upsert(session, article_id="b", language="en")
    _upsert(session, article_id="a", language="en")
    _upsert(session, article_id="c", language="zh")
    assert [a.id for a in kb.list_kb_articles(session)] == ["a", "b", "c"]
    assert [a.id for a in kb.list_kb_articles(session, language="en")] == ["a", "b"]
    assert [a.id for a in kb.list_kb_articles(session, limit=1)] == ["a"]


@pytest.mark.parametrize("article_id", ["nope"])
def test_missing_article(session, article_id):
    assert kb.get_kb_article(session, article_id=article_id) is None
    assert kb.delete_kb_article(session, article_id=article_id) is False


def test_delete(session):
    _upsert(session)
    assert kb.delete_kb_article(session, article_id="shipping-times") is True
    session.commit()
    assert kb.get_kb_article(session, article_id="shipping-times") is None
    assert kb.list_kb_articles(session) == []
