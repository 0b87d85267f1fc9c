"""finetune/answer_quality.py: fact recall and invented values of grounded replies, the
prompt the live bot would send, and the whole path (generation included) on the tiny chat
LM. The retrain gate built on it is in test_retrain.py."""

from __future__ import annotations

import json

import pytest

from bot import prompting
from core.errors import InputError
from finetune import answer_quality as aq
from fixtures import tiny

EN = {"question": "How long does standard shipping take?", "language": "en", "title": "Shipping",
      "passage": "Standard shipping takes 3-5 business days. Express shipping costs $9.90.",
      "facts": ["3-5 business days"]}
ZH = {"question": "退货期限是多久？", "language": "zh", "title": "退货",
      "passage": "签收后 30 天内可以申请退货。退款在 3 个工作日内到账。", "facts": [["30天", "三十天"]]}


def test_a_reply_with_the_fact_scores_one_without_it_zero():
    assert aq.score_reply("Standard  shipping takes 3–5 Business Days.", EN)["found"] == ["3-5 business days"]
    assert aq.score_reply("It usually arrives soon.", EN)["missed"] == ["3-5 business days"]
    assert aq.score_reply("签收后３０天内可以退货", ZH)["found"] == ["30天"]  # full-width, spaces next to Chinese
    assert aq.score_reply("可以退货", ZH)["missed"] == ["30天"]


def test_an_invented_number_counts_in_english_and_chinese():
    assert aq.score_reply("Standard shipping takes 3-5 business days.", EN)["invented"] == []
    assert aq.score_reply("It takes 7 business days and costs $4.50.", EN)["invented"] == ["7 business days", "$4.50"]
    assert aq.score_reply("签收后 30 天内可以退货。", ZH)["invented"] == []
    assert aq.score_reply("签收后 60 天内可以退货。", ZH)["invented"] == ["60 天"]
    # what the customer wrote may be echoed
    asked = {**EN, "question": "Is it 7 days?"}
    assert aq.score_reply("Not 7 days: 3-5 business days.", asked)["invented"] == []


def test_summary_overall_and_per_language():
    rows = [EN, ZH, EN, ZH]
    replies = ["3-5 business days.", "签收后30天内。", "Two weeks, 14 days.", "不知道"]
    result = aq.score_replies(rows, replies)
    assert (result["fact_recall"], result["all_facts"], result["invented"], result["n"]) == (50.0, 50.0, 25.0, 4)
    assert result["languages"]["en"] == {"fact_recall": 50.0, "all_facts": 50.0, "invented": 50.0, "n": 2}
    assert result["languages"]["zh"]["invented"] == 0.0
    assert result["replies"][2]["invented"] == ["Two weeks", "14 days"]


def test_the_prompt_is_the_live_bots_grounded_prompt():
    messages = aq.grounded_messages(EN, lambda m: 0, 1000)
    hit = prompting.Hit(id="x", title="Shipping", body=EN["passage"], language="en", score=1.0)
    assert messages == [{"role": "system", "content": prompting.system_message([hit], language="en", upset=False)},
                        {"role": "user", "content": EN["question"]}]
    assert "<article title=\"Shipping\">" in messages[0]["content"]


def test_read_rows_reports_every_problem(tmp_path):
    path = tmp_path / "eval.jsonl"
    path.write_text(json.dumps(EN) + "\n" + json.dumps({"question": "q"}) + "\nnot json\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"line 2: no facts, passage \(or sources\); line 3: not JSON"):
        aq.read_rows(path)
    with pytest.raises(InputError, match="no such file"):
        aq.read_rows(tmp_path / "gone.jsonl")


def test_evaluate_generates_with_the_tiny_chat_model_end_to_end(tmp_path):
    """The real path: LocalGenerator on the tiny LM, the live prompt, greedy, scored."""
    lm = tiny.build_chat_lm(tmp_path / "chat-lm")
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in (EN, ZH)), encoding="utf-8")
    result = aq.evaluate_answers(str(lm), path, tmp_path / "cache")
    assert result["n"] == 2 and set(result["languages"]) == {"en", "zh"}
    assert all(isinstance(r["reply"], str) for r in result["replies"])
    assert 0.0 <= result["fact_recall"] <= 100.0 and 0.0 <= result["invented"] <= 100.0
    again = aq.evaluate_answers(str(lm), path, tmp_path / "cache", max_rows=1)  # greedy: the same reply
    assert again["replies"][0]["reply"] == result["replies"][0]["reply"]
