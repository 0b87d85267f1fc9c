"""scripts/eval_answers.py: the metric functions (facts, invented numbers, refusals,
language) and the question set itself (both splits load, pass --check-set, are big enough
and share no question). No server, no network."""

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ev():
    spec = importlib.util.spec_from_file_location("eval_answers", REPO / "scripts" / "eval_answers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def articles(ev):
    return ev.load_articles()


# -- fact matching ---------------------------------------------------------------------

def test_a_fact_is_found_by_any_alternative_case_and_space_insensitive(ev):
    fact = ["30 days", "30-day", "thirty days"]
    assert ev.fact_found("You have THIRTY  days to return it.", fact) == "thirty days"
    assert ev.fact_found("Our 30\u2013day window", fact) == "30-day"  # any dash is "-"
    assert ev.fact_found("within 3 days", fact) is None


def test_dashes_fullwidth_digits_and_chinese_spacing_are_normalised(ev):
    assert ev.fact_found("Standard shipping takes 3–5 business days.", ["3-5 business days"])
    assert ev.fact_found("签收后３０天内可以退货", ["30 天"])
    assert ev.fact_found("签收后 30 天内可以退货", ["30天"])
    assert ev.fact_found("标准配送 3—5 个工作日送达", ["3-5个工作日"])


def test_match_facts_splits_found_and_missed(ev):
    facts = [["48 hours"], ["Report a problem"], ["$9.90"]]
    found, missed = ev.match_facts('Please use "Report a problem" within 48 hours.', facts)
    assert found == ["48 hours", "Report a problem"]
    assert missed == ["$9.90"]
    assert ev.match_facts("", facts) == ([], ["48 hours", "Report a problem", "$9.90"])


def test_a_paraphrase_fact_is_an_object(ev):
    alts, paraphrase = ev.fact_alternatives({"any": ["no charge"], "paraphrase": True})
    assert alts == ["no charge"] and paraphrase
    assert ev.fact_alternatives(["a", "b"]) == (["a", "b"], False)


def test_contradictions(ev):
    assert ev.contradictions_in("Sorry, there is a fee associated with cancellation.", ["there is a fee"]) == [
        "there is a fee"]
    assert ev.contradictions_in("There is no cancellation fee.", ["there is a fee", "cancellation fee applies"]) == []


# -- invented numbers ------------------------------------------------------------------

def test_a_number_copied_from_the_article_is_not_invented(ev, articles):
    src = [articles["en-shipping-options"]["text"]]
    assert ev.invented("Express shipping costs $9.90 and takes 1–2 business days; free over $49.", src) == []


def test_an_invented_number_amount_or_duration_is_caught(ev, articles):
    src = [articles["en-shipping-options"]["text"]]
    assert ev.invented("Express shipping costs $12.50 and takes 1-2 business days.", src) == ["12.5"]
    assert ev.invented("It arrives within 10 days.", src) == ["10"]


def test_decimal_and_thousands_forms_are_the_same_number(ev):
    assert ev.invented("It costs $9.9, orders up to 1500 dollars.", ["Costs $9.90; up to $1,500."]) == []


def test_phone_email_link_time_and_menu_path(ev, articles):
    src = [articles["en-contact"]["text"]]
    ok = 'Call +1 800 555 0199 or write to support@lumoshop.example, 9:00-21:00; tap "Live chat".'
    assert ev.invented(ok, src) == []
    bad = ('Call 1-800-123-4567 or write to help@lumo.com, we open at 8:30; see www.lumoshop.com; '
           'tap "Contact form".')
    found = ev.invented(bad, src)
    assert "18001234567" in found
    assert "help@lumo.com" in found
    assert "8:30" in found
    assert "lumoshop.com" in found
    assert '"contact form"' in found
    assert ev.invented("We open at 9 am.", src) == []  # the hour of "9:00"


def test_a_number_from_the_question_may_be_echoed(ev, articles):
    src = [articles["en-order-tracking"]["text"]]
    assert ev.invented("Order LS20481937 is on its way.", src) == ["20481937"]
    assert ev.invented("Order LS20481937 is on its way.", src, "where is LS20481937") == []


def test_list_numbering_is_not_a_claim(ev):
    assert ev.invented("1. Open the app\n2. Tap Help", ["Open the app and tap Help."]) == []


def test_chinese_numbers_fullwidth_and_numerals(ev, articles):
    src = [articles["zh-return-policy"]["text"]]
    assert ev.invented("签收后３０天内可以退货，会员60天，扣除¥12运费。", src) == []
    assert ev.invented("签收后三十天内可以退货。", src) == []
    assert ev.invented("退货运费是 ¥15。", src) == ["15"]
    assert ev.invented("退货期是四十五天。", src) == ["45"]
    assert ev.invented("请您先确认一下，一个订单可以退一次。", src) == []  # 一下/一个/一次 are words
    assert ev.invented("拨打 400-820-0199。", src) == ["4008200199"]
    assert ev.invented("拨打 400-820-0199。", [articles["zh-contact"]["text"]]) == []


def test_zh_numeral_values(ev):
    assert [ev.zh_numeral_value(s) for s in ("一", "两", "十", "十五", "三十", "九十九", "一百二十")] == [
        1, 2, 10, 15, 30, 99, 120]


# -- refusals and language ---------------------------------------------------------------

def test_the_servers_own_fallback_texts_are_refusals(ev):
    import sys

    sys.path.insert(0, str(REPO))
    from bot import prompting

    for lang in ("en", "zh"):
        assert ev.is_refusal(prompting.text("no_answer", lang))
        assert ev.is_refusal(prompting.text("handoff", lang))
        assert not ev.is_refusal(prompting.text("greeting", lang))


def test_refusal_detection(ev):
    assert ev.is_refusal("Sorry, I can’t help with that here. Shall I connect you with a human colleague?")
    assert ev.is_refusal("I cannot help with weather questions.")
    assert ev.is_refusal("抱歉，这个问题我无法帮您解答。")
    assert ev.is_refusal("anything at all", escalate=True)
    assert not ev.is_refusal("Standard shipping takes 3-5 business days.")
    assert not ev.is_refusal("随时输入“转人工”就能接通人工客服。")  # the contact article is an answer


def test_language_check(ev):
    assert ev.language_ok("标准配送一般 3–5 个工作日送达，Lumo Plus 会员免费加急。", "zh")
    assert not ev.language_ok("Standard shipping takes 3-5 business days.", "zh")
    assert ev.language_ok("Standard shipping takes 3-5 business days.", "en")
    assert not ev.language_ok("标准配送一般 3–5 个工作日送达。", "en")
    assert ev.language_ok("On our China site (Lumo 商城) you can also pay with Alipay and WeChat Pay.", "en")


def test_reply_length(ev):
    assert ev.reply_length("You can return it within 30 days.", "en") == 7
    assert ev.reply_length("30 天内 可以退货。", "zh") == 9


# -- scoring and the summary -------------------------------------------------------------

def test_score_and_summary(ev, articles):
    q = {"id": "t-1", "language": "en", "kind": "plain", "question": "express?",
         "article_ids": ["en-shipping-options"], "facts": [["$9.90"], ["1-2 business days"]],
         "contradictions": ["same-day delivery is available"]}
    good = ev.score(q, {"reply": "Express costs $9.90 and takes 1–2 business days.", "sources":
                        ["en-shipping-options"], "escalate": False, "seconds": 1.0}, articles)
    bad = ev.score(q, {"reply": "Express costs $8.00; same-day delivery is available.", "sources":
                       ["en-shipping-times", "en-shipping-options"], "escalate": False, "seconds": 3.0}, articles)
    un = ev.score({"id": "t-2", "language": "en", "kind": "unanswerable", "question": "weather?",
                   "article_ids": [], "facts": []},
                  {"reply": "I'm sorry, I can't help with that here.", "sources": [], "escalate": False,
                   "seconds": 0.1}, articles)
    assert good["top1"] and good["facts_missed"] == [] and good["invented"] == []
    assert not bad["top1"] and bad["top3"] and bad["invented"] == ["8"] and bad["contradictions"]
    m = ev.summarise([good, bad, un])
    assert m["top1"] == 0.5 and m["top3"] == 1.0
    assert m["fact_recall"] == 0.5 and m["all_facts"] == 0.5
    assert m["invented"] == pytest.approx(1 / 3) and m["contradictions"] == pytest.approx(1 / 3)
    assert m["refusal_unanswerable"] == 1.0 and m["false_refusal"] == 0.0
    summary = ev.summarise_by_language([good, bad, un])
    assert set(summary) == {"en", "all"}
    printed = ev.table(summary)
    assert printed.splitlines()[1].split()[:4] == ["en", "3", "50%", "100%"]
    assert ev.table(ev.summarise_by_language([un]))  # no answerable question: "-" cells


# -- the question set --------------------------------------------------------------------

def test_both_splits_load_pass_the_check_and_are_big_enough(ev, articles):
    per_split = {}
    for split in ("tune", "heldout"):
        questions = ev.load_questions(ev.SPLITS[split])
        assert ev.check_set(questions, articles) == []
        count = {lang: sum(q["language"] == lang for q in questions) for lang in ("en", "zh")}
        assert count["en"] >= 42 and count["zh"] >= 32, (split, count)
        kinds = {q["kind"] for q in questions}
        assert {"typo", "angry", "indirect", "two_questions", "two_articles", "unanswerable"} <= kinds
        unanswerable = sum(q["kind"] == "unanswerable" for q in questions) / len(questions)
        assert 0.10 <= unanswerable <= 0.20
        per_split[split] = questions
    tune, heldout = per_split["tune"], per_split["heldout"]
    assert not {ev.normalize(q["question"]) for q in tune} & {ev.normalize(q["question"]) for q in heldout}
    assert not {q["id"] for q in tune} & {q["id"] for q in heldout}


def test_the_check_catches_a_fact_not_in_the_article(ev, articles):
    q = {"id": "x-1", "language": "en", "question": "How much is express?", "kind": "plain",
         "article_ids": ["en-shipping-options"], "facts": [["$9.90"], ["$11.90", "eleven ninety"]],
         "contradictions": ["free on orders of $49"]}
    failures = ev.check_set([q], articles)
    assert any("$11.90" in f for f in failures)
    assert any("contradiction" in f for f in failures)
    assert ev.check_set([{**q, "facts": [["$9.90"], {"any": ["$11.90"], "paraphrase": True}],
                          "contradictions": []}], articles) == []
    assert ev.check_set([{**q, "article_ids": ["zh-shipping-options"], "facts": [["¥25"]],
                          "contradictions": []}], articles)  # a zh article for an en question


def test_check_set_mode_exits_non_zero_on_a_bad_set(ev, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x-1", "language": "en", "question": "q", "kind": "plain",
                               "article_ids": ["en-nope"], "facts": [["x"]]}) + "\n")
    assert ev.main(["--check-set", "--questions", str(bad)]) == 1
    assert "no article 'en-nope'" in capsys.readouterr().out
    assert ev.main(["--check-set"]) == 0


def test_the_default_is_the_tune_split_only(ev):
    assert ev.SPLITS["tune"] == [ev.DATA / "tune.jsonl"]
    assert ev.DATA / "heldout.jsonl" in ev.SPLITS["all"]


# -- the whole run against a stub server on loopback ---------------------------------------

@pytest.fixture
def stub_server():
    """/healthz and /v1/chat/completions (JSON or SSE) answering every question with the
    express-shipping article's facts."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    reply = "Express shipping costs $9.90 and takes 1–2 business days."
    extras = {"conversation_id": "c1", "escalate": False, "escalation_reason": None,
              "sources": [{"id": "en-shipping-options", "title": "Shipping", "score": 0.9}]}
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, code, body, ctype="application/json"):
            data = body.encode()
            self.send_response(code)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._send(200, json.dumps({"status": "ok", "models": {"chat": "stub"}}))

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            seen.append((body, self.headers.get("authorization")))
            if not body.get("stream"):
                self._send(200, json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}],
                                            **extras}))
                return
            events = [{"choices": [{"delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
            events += [{"choices": [{"delta": {"content": w}, "finish_reason": None}]} for w in reply.split(" ", 1)]
            events[-1]["choices"][0]["delta"]["content"] = " " + events[-1]["choices"][0]["delta"]["content"]
            events.append({"choices": [{"delta": {}, "finish_reason": "stop"}], **extras})
            self._send(200, "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n",
                       "text/event-stream")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


@pytest.mark.parametrize("stream", [False, True])
def test_a_run_over_http_writes_the_json_and_the_table(ev, stub_server, tmp_path, stream):
    url, seen = stub_server
    questions = tmp_path / "q.jsonl"
    rows = [{"id": "t-1", "language": "en", "question": "How much is express shipping?", "kind": "plain",
             "article_ids": ["en-shipping-options"], "facts": [["$9.90"], ["1-2 business days"]]},
            {"id": "t-2", "language": "en", "question": "Weather?", "kind": "unanswerable",
             "article_ids": [], "facts": []}]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.json"
    argv = ["--url", url, "--key", "K", "--questions", str(questions), "--json", str(out)] + (["--stream"] if stream else [])
    assert ev.main(argv) == 0
    result = json.loads(out.read_text())
    first = result["rows"][0]
    assert first["reply"] == "Express shipping costs $9.90 and takes 1–2 business days."
    assert first["sources"] == ["en-shipping-options"] and first["facts_missed"] == []
    assert result["summary"]["en"]["fact_recall"] == 1.0
    assert result["summary"]["en"]["refusal_unanswerable"] == 0.0
    assert seen[0][0]["model"] == "supportbot" and seen[0][0]["stream"] is stream
    assert seen[0][1] == "Bearer K"


def test_rescore_scores_an_earlier_run_with_changed_questions(ev, stub_server, tmp_path):
    url, _ = stub_server
    q = {"id": "t-1", "language": "en", "question": "How much is express shipping?", "kind": "plain",
         "article_ids": ["en-shipping-options"], "facts": [["$9.90"]], "contradictions": []}
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps(q) + "\n")
    run = tmp_path / "run.json"
    assert ev.main(["--url", url, "--questions", str(questions), "--json", str(run)]) == 0
    assert json.loads(run.read_text())["summary"]["en"]["contradictions"] == 0.0
    questions.write_text(json.dumps({**q, "contradictions": ["takes 1-2 business days"]}) + "\n")
    out = tmp_path / "rescored.json"
    assert ev.main(["--rescore", str(run), "--questions", str(questions), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["summary"]["en"]["contradictions"] == 1.0
    assert result["rows"][0]["reply"] == json.loads(run.read_text())["rows"][0]["reply"]
    assert "en/plain" in result["by_kind"]
