from __future__ import annotations

import pytest

from core.errors import InputError, NotFoundError, PayloadTooLargeError
from bot.generation import GenerationParams
from fixtures.dialogue import make_runtime
from fixtures.fakes import ScriptedGenerator
from storage.models import Message


@pytest.fixture
def runtime(tmp_path):
    rt = make_runtime(tmp_path)
    yield rt
    rt.close()


def stored(runtime, conversation_id):
    with runtime.sessions() as s:
        return [(m.role, m.text, m.sentiment_label, m.sources, m.model_version, m.latency_ms)
                for m in s.query(Message).filter_by(conversation_id=conversation_id).order_by(Message.created_at)]


def test_an_english_turn_is_answered_from_the_right_article_and_stored(runtime):
    d = runtime.dialogue
    cid = d.create_conversation(channel="test")
    result = d.turn(cid, "How long does standard shipping take?")
    assert result.reply.text == "Based on Shipping times: here is what to do."
    assert [s["id"] for s in result.reply.sources] == ["en-shipping"]
    assert result.sentiment["label"] == "neutral" and result.status == "open" and not result.escalate
    rows = stored(runtime, cid)
    assert [r[0] for r in rows] == ["customer", "bot"]
    assert rows[0][2] == "neutral"
    assert rows[1][3][0]["id"] == "en-shipping" and rows[1][4] == "scripted-chat" and rows[1][5] > 0
    # the article went to the model inside the system message, the customer's text last
    sent = runtime.generator.calls[-1]
    assert "Standard shipping takes 3-5 business days" in sent[0]["content"]
    assert sent[-1] == {"role": "user", "content": "How long does standard shipping take?"}


def test_a_chinese_turn_gets_a_chinese_answer_from_the_chinese_article(runtime):
    d = runtime.dialogue
    cid = d.create_conversation()
    result = d.turn(cid, "请问怎么下载电子发票？")
    assert result.language == "zh"
    assert result.reply.sources[0]["id"] == "zh-invoice"
    # Chinese is not in generate_languages (default "en"): the article's own sentences
    assert result.reply.text.startswith("您可以在我的订单的发票页面下载电子发票。")
    assert runtime.generator.calls == []


def test_an_upset_customer_gets_the_apology_instruction(runtime):
    d = runtime.dialogue
    cid = d.create_conversation()
    result = d.turn(cid, "bad bad: my return label is missing, how do I return the item?")
    assert result.sentiment["label"] == "negative"
    assert "Start with one short, sincere apology" in runtime.generator.calls[-1][0]["content"]
    zh = d.create_conversation()
    assert d.turn(zh, "东西坏了，差，怎么退货？").reply.text.startswith("非常抱歉")


def test_out_of_scope_gets_an_honest_answer_then_a_handoff(runtime):
    d = runtime.dialogue
    cid = d.create_conversation()
    first = d.turn(cid, "What will the weather be like in Paris tomorrow?")
    assert first.reply.text.startswith("I'm sorry, I can't help with that here")
    assert first.reply.sources == [] and not first.escalate
    second = d.turn(cid, "Recommend me a stock to buy")
    assert second.escalate and second.escalation_reason == "no_answer" and second.status == "escalated"
    assert runtime.generator.calls == []  # nothing was invented


def test_asking_for_a_person_escalates_and_the_bot_goes_quiet_until_released(runtime):
    d = runtime.dialogue
    cid = d.create_conversation()
    handoff = d.turn(cid, "I want to talk to a human")
    assert handoff.escalate and handoff.escalation_reason == "customer_request"
    assert "human colleague" in handoff.reply.text
    held = d.turn(cid, "hello? anyone?")
    assert held.reply is None and held.status == "escalated"
    agent = d.agent_message(cid, "Hi, this is Ana. I have refunded your order.", agent="ana")
    assert agent.role == "agent" and agent.agent == "ana"
    d.release(cid)
    back = d.turn(cid, "How long does shipping take?")
    assert back.status == "open" and back.reply.sources[0]["id"] == "en-shipping"
    roles = [r[0] for r in stored(runtime, cid)]
    assert roles == ["customer", "bot", "customer", "agent", "customer", "bot"]


def test_chinese_handoff(runtime):
    d = runtime.dialogue
    cid = d.create_conversation()
    r = d.turn(cid, "我要转人工")
    assert r.escalation_reason == "customer_request" and r.reply.text.startswith("正在为您转接人工客服")


def test_an_agent_writing_first_takes_the_conversation_over(runtime):
    d = runtime.dialogue
    cid = d.create_conversation()
    d.agent_message(cid, "Hello, can I help?", agent="bob")
    assert d.turn(cid, "yes please").reply is None


def test_a_failing_generator_falls_back_to_the_article(tmp_path):
    rt = make_runtime(tmp_path, generator=ScriptedGenerator(fail=True))
    try:
        d = rt.dialogue
        cid = d.create_conversation()
        result = d.turn(cid, "How do I reset my password?")
        assert result.reply.text.startswith("Based\n\nClick 'Forgot password'")  # what was streamed, then the article
        assert stored(rt, cid)[-1][4] == "supportbot-retrieval"
    finally:
        rt.close()


def test_streaming_yields_pieces_then_the_stored_result(runtime):
    d = runtime.dialogue
    cid = d.create_conversation()
    events = list(d.stream_turn(cid, "How do I reset my password?", GenerationParams(max_tokens=3)))
    *pieces, result = events
    assert "".join(pieces) == "Based on Resetting" == result.reply.text
    assert stored(runtime, cid)[-1][1] == "Based on Resetting"


def test_a_consumer_that_stops_early_loses_nothing_already_said(runtime):
    d = runtime.dialogue
    cid = d.create_conversation()
    events = d.stream_turn(cid, "How long does shipping take?")
    next(events)
    events.close()  # the client went away mid-reply
    assert [r[0] for r in stored(runtime, cid)] == ["customer"]


def test_long_conversations_never_overflow_the_context(tmp_path):
    gen = ScriptedGenerator(context_tokens=300)
    rt = make_runtime(tmp_path, generator=gen, chat_max_tokens=100)
    try:
        d = rt.dialogue
        cid = d.create_conversation()
        long_question = "How long does standard shipping take for my express shipping order? " * 3
        for _ in range(12):
            assert d.turn(cid, long_question).reply.sources[0]["id"] == "en-shipping"
        last = gen.calls[-1]
        assert gen.count_tokens(last) <= 300 - 100
        assert last[-1]["content"] == long_question.strip()
        assert "Earlier in this conversation the customer asked" in last[0]["content"]
    finally:
        rt.close()


@pytest.mark.parametrize("text, error", [("", InputError), ("   ", InputError), ("a\x00b", InputError),
                                         ("x" * 5001, PayloadTooLargeError)])
def test_bad_text_is_refused_and_nothing_is_stored(runtime, text, error):
    d = runtime.dialogue
    cid = d.create_conversation()
    with pytest.raises(error):
        d.turn(cid, text)
    assert stored(runtime, cid) == []


def test_unknown_conversation(runtime):
    with pytest.raises(NotFoundError):
        runtime.dialogue.turn("nope", "hello")
    with pytest.raises(NotFoundError):
        runtime.dialogue.release("nope")


def test_small_talk_is_answered_without_counting_as_a_failure(runtime):
    d = runtime.dialogue
    cid = d.create_conversation()
    assert d.turn(cid, "hello").reply.text.startswith("Hello!")
    assert d.turn(cid, "What is the capital of France?").status == "open"
    assert d.turn(cid, "thanks").reply.text.startswith("You're welcome")
    assert d.turn(cid, "谢谢").reply.text.startswith("不客气")


def test_history_given_by_a_client_is_stored_and_used(runtime):
    d = runtime.dialogue
    cid = d.create_conversation(history=[("user", "Hi, I ordered shoes"), ("assistant", "Great, how can I help?")])
    d.turn(cid, "How long does shipping take?")
    sent = runtime.generator.calls[-1]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert [r[0] for r in stored(runtime, cid)] == ["customer", "bot", "customer", "bot"]


def test_a_handoff_also_tells_what_the_article_says_and_stores_it(runtime):
    d = runtime.dialogue
    cid = d.create_conversation()
    r = d.turn(cid, "I want to talk to a human about how long express shipping takes")
    assert r.escalate and r.escalation_reason == "customer_request" and r.status == "escalated"
    assert r.reply.text.startswith("I'm connecting you with a human colleague")
    assert "1-2 business days" in r.reply.text and [s["id"] for s in r.reply.sources] == ["en-shipping"]
    assert stored(runtime, cid)[-1][1] == r.reply.text  # the customer sees what is stored
    plain = d.turn(d.create_conversation(), "I want to talk to a human")  # nothing to add: the hand-over alone
    assert plain.reply.sources == [] and "help pages" not in plain.reply.text
