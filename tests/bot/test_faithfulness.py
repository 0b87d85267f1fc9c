"""The faithfulness check (issue 15): every number, amount, duration, percentage, phone
number, e-mail, URL and quoted menu path in a generated reply must be in its sources (or
the customer's own words); streamed replies are checked a sentence at a time; the
dialogue answers from the article when the model invents a fact."""

from __future__ import annotations

import pytest

from bot.faithfulness import UnfaithfulReply, check_stream, unsupported
from bot.generation import GenerationError
from fixtures.dialogue import make_runtime
from fixtures.fakes import ScriptedGenerator
from storage.models import Message

EN = ("Returning an item\nYou can return unused items within 30 days of delivery. Start the return under "
      "\"My Orders\" → \"Return an item\" and print the free label. Refunds arrive in 3-5 business days. "
      "Return shipping costs $9.90 for bulky items; orders over 1,000 USD get 10% back as a voucher. "
      "Questions: help@lumoshop.example or +86 400-820-8820, Mon-Fri 9:00-18:00. Track it at lumoshop.example/track.")
ZH = ("退货说明\n商品签收后30天内，未使用即可退货。请在“我的订单”→“申请退货”中提交申请。收到退货后 5–7 个工作日内退款，"
      "运费 ¥99 以上免运费，质量问题 48 小时内反馈可获 8 折优惠券。客服热线 400-820-8820。")


@pytest.mark.parametrize(("reply", "source", "invented"), [
    # invented numbers are caught, copied ones pass, in both languages
    ("The refund window is approximately 10 days.", EN, ["10 days"]),
    ("You can return unused items within 30 days.", EN, []),
    ("You have a 30-day return window.", EN, []),
    ("You have thirty days.", EN, []),
    ("You have twenty days.", EN, ["twenty days"]),
    ("签收后10天内可以退货。", ZH, ["10天"]),
    ("签收后30天内可以退货。", ZH, []),
    ("签收后三十天内可以退货。", ZH, []),
    ("签收后九天内可以退货。", ZH, ["九天"]),
    # amounts: symbols, codes, separators and decimal commas
    ("Bulky items cost 9.90 dollars to send back.", EN, []),
    ("Bulky items cost 9,90 € to send back.", EN, []),
    ("Bulky items cost $12.50 to send back.", EN, ["$12.50"]),
    ("Orders over $1000 get a voucher.", EN, []),
    ("Orders over $500 get a voucher.", EN, ["$500"]),
    ("满99元免运费。", ZH, []),
    ("满 ¥199 免运费。", ZH, ["¥199"]),
    # durations and ranges
    ("Refunds arrive in 3 to 5 business days.", EN, []),
    ("Refunds arrive within 5 business days.", EN, []),
    ("Refunds arrive in 3-5 hours.", EN, ["3-5 hours"]),
    ("Refunds arrive in 30 minutes.", EN, ["30 minutes"]),
    ("收到退货后5到7个工作日内退款。", ZH, []),
    ("请在48小时内反馈。", ZH, []),
    ("请在24小时内反馈。", ZH, ["24小时"]),
    ("Please report it within 48 hours.", ZH, []),  # the Chinese article's fact, said in English
    # percentages and discounts
    ("You get 10 percent back.", EN, []),
    ("You get 15% back.", EN, ["15%"]),
    ("可获8折优惠券。", ZH, []),
    ("可获7折优惠券。", ZH, ["7折"]),
    # contacts: phones (any separators, country code, full-width), e-mails, URLs, times
    ("Call us on 400 820 8820.", EN, []),
    ("Call us on +86 (400) 820-8820.", EN, []),
    ("请拨打４００－８２０－８８２０。", ZH, []),
    ("Call us on 400-820-8821.", EN, ["400-820-8821"]),
    ("Write to help@lumoshop.example.", EN, []),
    ("Write to support@lumoshop.example.", EN, ["support@lumoshop.example"]),
    ("Track it at https://www.lumoshop.example/track.", EN, []),
    ("Track it at lumoshop.example/returns.", EN, ["lumoshop.example/returns"]),
    ("We answer from 9:00 to 18:00.", EN, []),
    ("We answer from 8:00 to 18:00.", EN, ["8:00"]),
    # quoted menu paths
    ("Open \"My Orders\" → \"Return an item\".", EN, []),
    ("Open 'My Orders' and choose 'Return an item'.", EN, []),
    ("Open \"My Orders\" > \"Return center\".", EN, ["\"Return center\""]),
    ("请在「我的订单」里点「申请退货」。", ZH, []),
    ("请在“我的订单”里点“申请售后”。", ZH, ["“申请售后”"]),
    # not claims: list markers, number words outside a quantity, plain prose
    ("1. Open My Orders.\n2. Print the free label.", EN, []),
    ("One of our colleagues will help you.", EN, []),
    ("稍等一下，我帮您看一看。", ZH, []),
])
def test_unsupported_claims(reply, source, invented):
    assert unsupported(reply, [source]) == invented


def test_numbers_the_customer_gave_are_allowed():
    reply = "I've checked order LS20481937 from 12 March: it can still be returned within 30 days."
    assert unsupported(reply, [EN]) == ["20481937", "12"]
    assert unsupported(reply, [EN], allowed=["my order LS20481937 arrived on 12 March, can I return it?"]) == []


def test_every_demo_article_supports_itself_and_not_another():
    import json
    from pathlib import Path

    import bot

    kb = Path(bot.__file__).parent / "demo_kb"
    articles = [json.loads(line) for f in ("shop_en.jsonl", "shop_zh.jsonl") for line in (kb / f).open()]
    for a in articles:
        assert unsupported(a["body"], [a["title"] + "\n" + a["body"]]) == [], a["id"]
    returns, tracking = (next(a for a in articles if a["id"] == i) for i in ("en-return-policy", "en-order-tracking"))
    assert unsupported(returns["body"], [tracking["body"]])


# -- streaming --------------------------------------------------------------------------------------------------

class Recorder:
    """A model's pieces, with a log of when each was asked for and when text was sent."""

    def __init__(self, pieces: list[str], fail_at: int | None = None):
        self.pieces, self.fail_at, self.log = pieces, fail_at, []

    def stream(self):
        for i, piece in enumerate(self.pieces):
            if i == self.fail_at:
                raise GenerationError("the model timed out")
            self.log.append(("generated", piece))
            yield piece

    def run(self, sources, allowed=()):
        for out in check_stream(self.stream(), sources, allowed):
            self.log.append(("sent", out))


def test_a_faithful_reply_streams_a_sentence_at_a_time():
    r = Recorder(["You can ", "return unused items ", "within 3", "0 days", ". ", "Refunds ", "arrive in ",
                  "3-5 business", " days.\nThe label is free", "."])
    r.run([EN])
    sent = [x for kind, x in r.log if kind == "sent"]
    assert "".join(sent) == "".join(r.pieces)
    # the first sentence went out before the model was asked for the second one
    assert r.log.index(("sent", "You can return unused items within 30 days.")) < r.log.index(("generated", "Refunds "))
    assert r.log.index(("sent", " Refunds arrive in 3-5 business days.\n")) < r.log.index(("generated", "."))
    # nothing is held back longer than a sentence: "within 3" was not sent before "0 days" came
    assert r.log.index(("generated", "0 days")) < r.log.index(("sent", "You can return unused items within 30 days."))


def test_the_stream_stops_before_an_unfaithful_sentence():
    r = Recorder(["You can return unused items within 30 days. ", "Refunds ", "arrive in ", "about 10 days", ". ",
                  "Thank you!"])
    with pytest.raises(UnfaithfulReply) as caught:
        r.run([EN])
    assert isinstance(caught.value, GenerationError) and caught.value.spans == ["10 days"]
    assert [x for kind, x in r.log if kind == "sent"] == ["You can return unused items within 30 days."]
    assert ("generated", "Thank you!") not in r.log  # stopped as soon as the sentence ended


def test_the_last_unterminated_sentence_is_checked_too():
    with pytest.raises(UnfaithfulReply):
        Recorder(["签收后", "30天内可以退货。", "退款需要", "10个工作日"]).run([ZH])
    ok = Recorder(["签收后", "30天内可以退货。", "退款需要", "5–7个工作日"])
    ok.run([ZH])
    assert [x for kind, x in ok.log if kind == "sent"] == ["签收后30天内可以退货。", "退款需要5–7个工作日"]


def test_a_decimal_split_across_pieces_is_not_a_sentence_end():
    r = Recorder(["It costs $9.", "90 to send back.", " Thanks"])
    r.run([EN])
    assert [x for kind, x in r.log if kind == "sent"] == ["It costs $9.90 to send back.", " Thanks"]
    with pytest.raises(UnfaithfulReply):
        Recorder(["It costs $9.", "95 to send back."]).run([EN])


def test_a_menu_path_with_a_full_stop_inside_its_quotes_is_checked_whole():
    with pytest.raises(UnfaithfulReply):
        Recorder(['Tap "Orders. ', 'Returns center" to start.']).run([EN])


def test_a_failing_model_keeps_what_was_supported_and_its_error():
    r = Recorder(["You can return items ", "within 30 days", " if unused"], fail_at=2)
    with pytest.raises(GenerationError, match="timed out"):
        r.run([EN])
    assert [x for kind, x in r.log if kind == "sent"] == ["You can return items within 30 days"]
    r = Recorder(["You can return items ", "within 10 days", " if unused"], fail_at=2)
    with pytest.raises(GenerationError, match="timed out"):
        r.run([EN])
    assert [x for kind, x in r.log if kind == "sent"] == []


# -- in the dialogue --------------------------------------------------------------------------------------------

def bot_rows(runtime, conversation_id):
    with runtime.sessions() as s:
        return [(m.text, m.model_version) for m in
                s.query(Message).filter_by(conversation_id=conversation_id, role="bot").order_by(Message.created_at)]


@pytest.mark.parametrize("streamed", [False, True])
def test_an_invented_number_gets_the_article_instead(tmp_path, streamed):
    gen = ScriptedGenerator(reply="You can return unused items within 10 days of delivery.")
    rt = make_runtime(tmp_path, generator=gen)
    try:
        d = rt.dialogue
        cid = d.create_conversation()
        question = "How many days do I have to return an item?"
        if streamed:
            *pieces, result = list(d.stream_turn(cid, question))
            assert "10 days" not in "".join(pieces) and "".join(pieces) == result.reply.text
        else:
            result = d.turn(cid, question)
        assert len(gen.calls) == 1  # the model wrote a reply; it was not sent
        assert result.reply.sources[0]["id"] == "en-returns"
        assert "10 days" not in result.reply.text
        assert result.reply.text.startswith("You can return unused items within 30 days of delivery.")
        assert result.model_version == "supportbot-retrieval"
        assert bot_rows(rt, cid) == [(result.reply.text, "supportbot-retrieval")]
    finally:
        rt.close()


def test_a_faithful_sentence_already_streamed_stays_and_the_article_follows(tmp_path):
    gen = ScriptedGenerator(reply="You can return unused items within 30 days. Refunds arrive in 2 days.")
    rt = make_runtime(tmp_path, generator=gen)
    try:
        d = rt.dialogue
        *pieces, result = list(d.stream_turn(d.create_conversation(), "How many days do I have to return an item?"))
        text = "".join(pieces)
        assert text.startswith("You can return unused items within 30 days.\n\nYou can return unused items")
        assert "2 days" not in text and text == result.reply.text and result.model_version == "supportbot-retrieval"
    finally:
        rt.close()


def test_a_faithful_reply_is_sent_as_the_model_wrote_it(tmp_path):
    reply = "You can return unused items within 30 days of delivery. Refunds arrive in 5-7 business days."
    rt = make_runtime(tmp_path, generator=ScriptedGenerator(reply=reply))
    try:
        d = rt.dialogue
        result = d.turn(d.create_conversation(), "How many days do I have to return an item?")
        assert result.reply.text == reply and result.model_version == "scripted-chat"
    finally:
        rt.close()


def test_the_customers_own_order_number_may_be_repeated(tmp_path):
    reply = "For order 20481937: you can return unused items within 30 days of delivery."
    rt = make_runtime(tmp_path, generator=ScriptedGenerator(reply=reply))
    try:
        d = rt.dialogue
        result = d.turn(d.create_conversation(), "Can I still return an item from order 20481937?")
        assert result.reply.text == reply and result.model_version == "scripted-chat"
    finally:
        rt.close()
