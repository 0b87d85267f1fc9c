from __future__ import annotations

import pytest

from bot.generation import apply_stops
from bot.prompting import fit_context, retrieval_answer, small_talk, system_message
from bot.retrieval import Hit

HIT = Hit("en-x", "Returns", "You can return items within 30 days. Use the free label. Refunds take 5 days. More.", "en", 0.9)


def words(messages):
    return sum(len(m["content"].split()) for m in messages)


def test_fit_context_keeps_what_fits_and_summarises_the_rest():
    msgs = [{"role": "system", "content": "sys " * 10}]
    for i in range(10):
        msgs += [{"role": "user", "content": f"question {i} " + "w " * 20},
                 {"role": "assistant", "content": "answer " * 20}]
    msgs.append({"role": "user", "content": "the last question"})
    fitted = fit_context(msgs, words, 120)
    assert words(fitted) <= 120
    assert fitted[-1] == msgs[-1] and fitted[0]["content"].startswith("sys sys")
    assert "Earlier in this conversation the customer asked: " in fitted[0]["content"]
    assert fit_context(msgs[:3], words, 1000) == msgs[:3]  # nothing to do


def test_fit_context_cuts_an_overlong_last_message_instead_of_failing():
    msgs = [{"role": "system", "content": "sys"}, {"role": "user", "content": "start " + "x " * 500 + " end"}]
    fitted = fit_context(msgs, words, 60)
    assert words(fitted) <= 60
    assert fitted[-1]["content"].startswith("start") and fitted[-1]["content"].endswith("end")


def test_system_message_holds_the_article_language_and_tone():
    calm = system_message([HIT], language="zh", upset=False)
    assert "<article title=\"Returns\">" in calm and "Reply in Chinese" in calm and "apology" not in calm
    assert "apology" in system_message([HIT], language="en", upset=True)


def test_retrieval_answer():
    assert retrieval_answer(HIT, language="en", upset=False) == \
        "You can return items within 30 days. Use the free label. Refunds take 5 days."
    assert retrieval_answer(HIT, language="en", upset=True).startswith("I'm sorry about this. You can")
    zh = Hit("zh-x", "退货", "30天内可以退货。请使用免费面单。退款需要5天。", "zh", 0.9)
    assert retrieval_answer(zh, language="zh", upset=True) == "非常抱歉给您带来不便。30天内可以退货。请使用免费面单。退款需要5天。"


@pytest.mark.parametrize("text, kind", [("hi", "greeting"), ("Hello!", "greeting"), ("您好", "greeting"),
                                        ("thanks!", "thanks"), ("谢谢", "thanks"), ("hi, where is my order", None)])
def test_small_talk(text, kind):
    assert small_talk(text) == kind


@pytest.mark.parametrize("pieces, stops, out", [
    (["Hello", " wor", "ld"], [], "Hello world"),
    (["Hello", " wor", "ld", " again"], ["world"], "Hello "),
    (["ab", "c<|e", "nd|>tail"], ["<|end|>"], "abc"),
    (["no stop", " here"], ["###"], "no stop here"),
])
def test_apply_stops(pieces, stops, out):
    assert "".join(apply_stops(iter(pieces), stops)) == out
