"""Grounded answers: sentence splitting, choosing the sentences that answer the question
(not the article's first ones), a second article for a second question, the reply's
framing and length."""

from __future__ import annotations

from bot.grounding import MAX_CHARS, MAX_QUESTIONS, MAX_WORDS, clauses, compose, other_questions, select, split_sentences
from bot.retrieval import Hit, terms

CANCEL = Hit("en-cancel", "Cancelling an order", (
    "You can cancel an order under My Orders as long as it has not shipped. "
    "Open the order and tap \"Cancel order\". "
    "Cancelling before shipping is free of charge and the refund goes back to your original payment method. "
    "Once an order has shipped, it can no longer be cancelled; return it instead."), "en", 0.8)
REFUND = Hit("en-refund", "Refund times", (
    "Refunds are issued within 2 business days after we receive your return. "
    "Card refunds take 5-7 business days to show on your statement. PayPal refunds arrive within 24 hours."),
    "en", 0.7)
ZH_SHIP = Hit("zh-shipping", "配送时间与运费", (
    "标准配送一般 3-5 个工作日送达，订单满 49 元免运费。加急配送 1-2 个工作日送达，运费 9.9 元。"
    "偏远地区可能多需要 2 天。"), "zh", 0.8)


def test_sentences_split_at_sentence_ends_not_inside_numbers_addresses_or_abbreviations():
    text = "Express costs $9.90, e.g. for gifts. Track it at lumoshop.example/track today! Done."
    assert split_sentences(text) == ["Express costs $9.90, e.g. for gifts.", "Track it at lumoshop.example/track today!",
                                     "Done."]
    assert split_sentences("标准配送 3-5 个工作日。加急配送运费 9.9 元！偏远地区另计") == [
        "标准配送 3-5 个工作日。", "加急配送运费 9.9 元！", "偏远地区另计"]


def test_the_sentence_that_answers_is_chosen_not_the_first_ones():
    chosen = select("Is there a fee if I cancel before it ships?", [CANCEL])
    texts = [s.text for s in chosen]
    assert any("free of charge" in t for t in texts)
    assert all(s.hit is CANCEL for s in chosen)
    chosen = select("加急配送要多少钱？", [ZH_SHIP])
    assert any("9.9 元" in s.text for s in chosen)


def _search(*hits):
    """A stand-in retrieval: the hit whose body shares the most words with the clause."""
    def search(clause):
        words = set(terms(clause))
        best = max(hits, key=lambda h: len(words & set(terms(h.title + " " + h.body))) / len(set(terms(h.body))))
        return [best] if best.score >= 0.35 else []
    return search


def test_a_turn_is_split_into_its_questions():
    assert clauses("How do I cancel my order, and how long does the card refund take?") == [
        "How do I cancel my order", "how long does the card refund take?"]
    assert clauses("衣服不合适想退，怎么寄回去？钱多久能退回来？") == ["衣服不合适想退，怎么寄回去？", "钱多久能退回来？"]
    assert clauses("Is there a fee if I cancel before it ships?") == ["Is there a fee if I cancel before it ships?"]


def test_a_second_article_joins_for_a_second_question_and_not_otherwise():
    question = "How do I cancel my order, and how long does the card refund take?"
    also = other_questions(question, CANCEL, _search(CANCEL, REFUND))
    assert [h.id for _, h in also] == ["en-refund"]
    two = select(question, [CANCEL], also=also)
    assert [s.hit.id for s in two][0] == "en-cancel" and {s.hit.id for s in two} == {"en-cancel", "en-refund"}
    assert any("5-7 business days" in s.text for s in two)
    assert other_questions("How do I cancel my order?", CANCEL, _search(CANCEL, REFUND)) == []
    far = Hit(REFUND.id, REFUND.title, REFUND.body, "en", 0.2)  # below the answer threshold: does not join
    assert other_questions(question, CANCEL, _search(CANCEL, far)) == []


def test_an_articles_own_question_stays_with_its_answer():
    body = "Enter the code. Didn't get the code? Check your spam folder and wait 60 seconds.\n收不到验证码？请等 60 秒。"
    assert split_sentences(body) == ["Enter the code.", "Didn't get the code? Check your spam folder and wait 60 seconds.",
                                     "收不到验证码？请等 60 秒。"]


def test_the_reply_leads_with_an_apology_when_upset_and_stays_short():
    chosen = select("Is there a fee if I cancel before it ships?", [CANCEL])
    calm = compose(chosen, language="en", upset=False, apology="I'm sorry about this.")
    upset = compose(chosen, language="en", upset=True, apology="I'm sorry about this.")
    assert not calm.startswith("I'm sorry") and upset.startswith("I'm sorry about this. ")
    assert len(calm.split()) <= MAX_WORDS
    long = Hit("x", "x", " ".join(f"Sentence number {i} talks about cancel fees at length here." for i in range(30)),
               "en", 0.9)
    assert len(compose(select("cancel fees", [long]), language="en", upset=False).split()) <= MAX_WORDS
    zh = compose(select("加急配送要多少钱？", [ZH_SHIP]), language="zh", upset=True, apology="非常抱歉给您带来不便。")
    assert zh.startswith("非常抱歉") and len(zh) <= MAX_CHARS + 20 and " " not in zh[:12]


def test_a_turn_full_of_questions_costs_a_bounded_number_of_searches():
    searched = []

    def search(clause):
        searched.append(clause)
        return [REFUND]

    other_questions("How do I cancel? " + "Refund? " * 2000, CANCEL, search)
    assert 0 < len(searched) <= MAX_QUESTIONS
