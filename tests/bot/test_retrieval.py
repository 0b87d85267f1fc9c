from __future__ import annotations

import numpy as np

from bot.intent import IntentResult
from bot.knowledge import import_articles
from bot.retrieval import KnowledgeIndex, build_index, terms, top_k
from fixtures.dialogue import ARTICLES, make_runtime
from fixtures.fakes import HashEmbedder


def test_terms_stem_fold_synonyms_and_split_chinese_into_bigrams():
    assert terms("The parcels were delivered!") == ["package", "ship"]
    assert terms("Can I send back my shoes?") == ["return", "shoe"] == terms("return shoe")
    assert terms("boxes") == terms("box") and terms("address") == ["address"]
    assert terms("怎么退货") == ["么退", "退货"]  # a bigram of two function characters is dropped
    assert terms("货") == ["货"]


def test_top_k_is_the_head_of_a_stable_sort_ties_in_index_order():
    rng = np.random.default_rng(0)
    for _ in range(500):
        score = rng.choice(np.array([-1.0, 0.0, 0.3, 0.5, 1.0], dtype=np.float32), int(rng.integers(1, 40)))
        for k in (0, 1, 3, 50):
            assert top_k(score, k).tolist() == np.argsort(-score, kind="stable")[:k].tolist()


def index(embedder=None) -> KnowledgeIndex:
    embedder = embedder or HashEmbedder()
    return KnowledgeIndex(ARTICLES, embedder.embed([a.text for a in ARTICLES]), embedder)


def test_finds_the_right_article_in_each_language():
    idx = index()
    assert idx.search("how long does standard shipping take", language="en")[0].id == "en-shipping"
    assert idx.search("I forgot my password", language="en")[0].id == "en-password"
    assert idx.search("我想退货", language="zh")[0].id == "zh-returns"
    assert idx.search("电子发票在哪里下载", language="zh")[0].id == "zh-invoice"


def test_the_customers_language_comes_first():
    hits = index().search("退货", language="zh", k=5)
    assert {h.language for h in hits} == {"zh"}
    # a language with no articles searches them all
    assert index().search("return", language="fr", k=1)[0].id == "en-returns"


def test_scores_are_absolute_an_unrelated_question_scores_low():
    idx = index()
    good = idx.search("how do I return an item", language="en")[0].score
    bad = idx.search("what is the capital of France", language="en")[0].score
    assert 0 <= bad < 0.2 < good <= 1.0


def test_intent_tags_rank_their_articles_first_but_do_not_make_a_turn_answerable():
    idx = index()
    shipping, refund = IntentResult("delivery_period", 1.0), IntentResult("get_refund", 1.0)
    plain = idx.search("is it free", language="en", k=3)
    boosted = idx.search("is it free", language="en", k=3, intent=refund)
    assert plain[0].id == "en-shipping" and boosted[0].id == "en-returns"
    # an intent model names an intent for any text: the score that decides "answer" ignores it
    scores = {h.id: h.score for h in plain}
    assert all(h.score == scores.get(h.id, h.score) for h in boosted)
    weather = idx.search("what is the capital of France", language="en", intent=shipping)[0]
    assert weather.score < 0.2
    # words alone (no encoder): the intent still adds to the score, as before
    lexical = KnowledgeIndex(ARTICLES, None, None)
    assert (lexical.search("when will it come", language="en", intent=shipping)[0].score
            > max([h.score for h in lexical.search("when will it come", language="en")] + [0]))


def test_lexical_only_without_embeddings():
    idx = KnowledgeIndex(ARTICLES, None, None)
    assert idx.search("standard shipping", language="en")[0].id == "en-shipping"


def test_build_index_reads_stored_vectors_and_embeds_only_the_missing(tmp_path):
    rt = make_runtime(tmp_path)
    try:
        embedder = HashEmbedder()
        with rt.sessions.begin() as s:
            from dataclasses import replace

            # edited articles re-imported without an embedder lose their stale vectors
            import_articles(s, [replace(a, body=a.body + " Updated.") for a in ARTICLES[:2]], None)
        with rt.sessions() as s:
            idx = build_index(s, embedder)
        english = sum(a.language == "en" for a in ARTICLES)  # the hash embedder reads English only
        assert embedder.calls == 1 and idx.embedded() == {embedder.name: english}
        assert idx.search("password link", language="en")[0].id == "en-password"
    finally:
        rt.close()


def test_the_runtime_sees_newly_imported_articles(tmp_path, monkeypatch):
    rt = make_runtime(tmp_path)
    try:
        assert len(rt.knowledge()) == len(ARTICLES)
        from bot.knowledge import Article

        with rt.sessions.begin() as s:
            import_articles(s, [Article("en-gift", "Gift cards", "Gift cards never expire.", "en")], rt.embedder)
        rt._index_checked = 0.0  # skip the 2-second re-check interval
        assert rt.knowledge().search("do gift cards expire", language="en")[0].id == "en-gift"
    finally:
        rt.close()


class _Reads(HashEmbedder):
    """A hash embedder that reads the given languages (None: all), named apart."""

    def __init__(self, name, languages, meaning=None):
        super().__init__()
        self.name, self.languages, self.meaning = name, languages, meaning or {}

    def embed(self, texts):
        # "meaning": words the encoder takes as the same (what a real encoder would know)
        texts = [" ".join([t] + [v for k, v in self.meaning.items() if k in t]) for t in texts]
        return super().embed(texts)


def test_each_language_is_embedded_and_searched_by_its_own_encoder(tmp_path):
    from bot.retrieval import Embedders

    english = _Reads("en-only", ("en",))
    # 发漂 (a typo of 发票, invoice) shares no bigram with the article; the encoder knows it
    chinese = _Reads("multilingual", None, meaning={"发漂": "invoice", "发票": "invoice"})
    encoders = Embedders(english, chinese)
    rt = make_runtime(tmp_path, articles=[])
    try:
        with rt.sessions.begin() as s:
            import_articles(s, ARTICLES, encoders)
        with rt.sessions() as s:
            idx = build_index(s, encoders)
        n_en = sum(a.language == "en" for a in ARTICLES)
        assert idx.embedded() == {"en-only": n_en, "multilingual": len(ARTICLES) - n_en}
        assert idx.embedder_for("zh") is chinese and idx.embedder_for("en") is english
        assert idx.search("我的发漂在哪下载", language="zh")[0].id == "zh-invoice"
        assert KnowledgeIndex(ARTICLES, None, None).search("发漂", language="zh")[0].score < 0.2  # words alone: no
        with rt.sessions() as s:  # stored vectors are reused: nothing embedded again
            before = english.calls + chinese.calls
            build_index(s, encoders)
            assert english.calls + chinese.calls == before
    finally:
        rt.close()


def test_a_hits_score_is_absolute_so_the_best_of_bad_matches_stays_low():
    idx = index()
    weather = idx.search("will it rain in paris tomorrow", language="en")
    assert weather and weather[0].score < 0.2  # ranked first among the articles, yet no answer
    assert idx.search("how long does standard shipping take", language="en")[0].score > 0.35
