"""Grounded answers: sentence splitting, choosing the sentences that answer the question
(not the article's first ones), a second article for a second question, the reply's
framing and length."""

from __future__ import annotations

from bot.grounding import MAX_CHARS, MAX_WORDS, compose, select, split_sentences
from bot.retrieval import Hit

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


def test_a_second_article_joins_for_a_second_question_and_not_otherwise():
    two = select("How do I cancel my order, and how long does the card refund take?", [CANCEL, REFUND])
    assert {s.hit.id for s in two} == {"en-cancel", "en-refund"}
    assert any("5-7 business days" in s.text for s in two)
    one = select("How do I cancel my order?", [CANCEL, REFUND])
    assert {s.hit.id for s in one} == {"en-cancel"}
    far = Hit(REFUND.id, REFUND.title, REFUND.body, "en", 0.2)  # too weak a match to join
    assert {s.hit.id for s in select("cancel order, card refund time?", [CANCEL, far])} == {"en-cancel"}


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
