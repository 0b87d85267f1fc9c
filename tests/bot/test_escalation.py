from __future__ import annotations

import pytest

from bot.escalation import EscalationPolicy, TurnSignals


def turn(text, label="neutral", score=0.9, language="en"):
    return TurnSignals(text, language, label, score)


@pytest.mark.parametrize("text", ["I want to talk to a human", "can you connect me to an agent please",
                                  "Real person please!", "let me speak to your manager", "agent", "我要转人工",
                                  "帮我转一下人工吧", "人工客服", "找个真人跟我说", "让你们主管来"])
def test_requests_for_a_person(text):
    assert EscalationPolicy().decide([turn(text)]) == "customer_request"


@pytest.mark.parametrize("text", ["no need for an agent, I found it", "is this a human or a bot?",
                                  "my husband ordered it", "不用转人工了，谢谢", "周末有人工客服吗？",
                                  "昨天人工客服说退款在处理", "where is my order"])
def test_not_requests_for_a_person(text):
    assert EscalationPolicy().decide([turn(text)]) is None


@pytest.mark.parametrize("text", ["I'll never order from you again", "I'm reporting you to the consumer protection agency",
                                  "my lawyer will hear about this", "I'll post this on twitter", "我要投诉你们",
                                  "再也不在你们家买了", "我要去12315投诉", "我要发微博曝光你们"])
def test_churn_threats(text):
    assert EscalationPolicy().decide([turn(text)]) == "churn_threat"


@pytest.mark.parametrize("text", ["please cancel order LS12345678", "how do I close my account",
                                  "lol I'll never order the wrong size again", "下次再也不买错尺码了", "怎么投诉快递员？"])
def test_not_churn_threats(text):
    assert EscalationPolicy().decide([turn(text)]) is None


def test_one_strongly_negative_turn_with_strong_words():
    p = EscalationPolicy()
    assert p.decide([turn("This is the worst service ever", "negative", 0.97)]) == "negative_sentiment"
    assert p.decide([turn("my package is late", "negative", 0.97)]) is None  # negative, but mild
    assert p.decide([turn("this is the worst", "negative", 0.5)]) is None  # the model is not sure
    assert p.decide([turn("什么破平台", "neutral", 0.7)]) == "negative_sentiment"  # an insult counts anyway


def test_two_negative_turns_in_a_row():
    p = EscalationPolicy()
    assert p.decide([turn("my package is late", "negative", 0.9), turn("still nothing", "negative", 0.8)]) == \
        "negative_sentiment"
    assert p.decide([turn("my package is late", "negative", 0.9), turn("ok thanks", "positive", 0.9)]) is None


def test_repeated_failure_to_answer():
    p = EscalationPolicy(no_answer_turns=2)
    assert p.decide([turn("what is the weather")], no_answer_streak=1) is None
    assert p.decide([turn("what is the weather")], no_answer_streak=2) == "no_answer"
    assert p.decide([]) is None
