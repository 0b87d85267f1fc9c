"""storage.export: training sets from real conversations (the dialogue with the
make_runtime fakes) and feedback recorded through the real service, written to files
that are read back with the plain csv/json modules."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from fixtures.dialogue import make_runtime
from fixtures.env import clean_supportbot_env
from fixtures.feedback import conversation, read_csv, read_export, read_jsonl, reply_id, sha256
from storage import export as exports
from storage.models import Export

ROUTES = {"zh": {"zh", "ja"}}


@pytest.fixture
def rt(monkeypatch, tmp_path):
    clean_supportbot_env(monkeypatch, tmp_path)
    runtime = make_runtime(tmp_path / "home")
    yield runtime
    runtime.close()


def export(rt, what, path, **kw) -> Export:
    with rt.sessions.begin() as s:
        record = exports.export_training_set(s, what=what, path=path, **kw)
        s.expunge(record)
        return record


def rows(rt, what, **kw) -> list[exports.ExportRow]:
    with rt.sessions() as s:
        return exports.collect_rows(s, what=what, **kw)


def label_rows(rt, what="sentiment", **kw) -> list[tuple[str, str]]:
    return [(r.data["text"], r.data["label"]) for r in rows(rt, what, **kw)]


# ---- sentiment / intent --------------------------------------------------------------

def test_corrections_on_the_customer_turn_and_on_the_bot_reply_label_the_customer_text(rt, tmp_path):
    a, [ta] = conversation(rt, "The delivery was late again")
    b, [tb] = conversation(rt, "How do I reset my password?")
    c, [tc] = conversation(rt, "How long does shipping take?")
    rt.feedback.record(message_id=ta.message_id, rating="down", corrected_sentiment="NEG")
    rt.feedback.record(message_id=reply_id(tb), rating="down", corrected_sentiment="positive",
                       comment="the customer was happy")
    rt.feedback.record(message_id=reply_id(tc), rating="up")  # no correction: not a label row
    rt.feedback.record(message_id=reply_id(tc), rating="down", corrected_intent="delivery_period")

    got = rows(rt, "sentiment")
    assert [(r.data, r.conversation_id) for r in got] == [
        ({"text": "The delivery was late again", "label": "negative"}, a),
        ({"text": "How do I reset my password?", "label": "positive"}, b)]
    assert label_rows(rt, "intent") == [("How long does shipping take?", "delivery_period")]

    record = export(rt, "sentiment", tmp_path / "out" / "sentiment.csv")
    assert read_csv(tmp_path / "out" / "sentiment.csv") == [
        {"text": "The delivery was late again", "label": "negative"},
        {"text": "How do I reset my password?", "label": "positive"}]
    assert record.rows == 2 and record.conversation_ids == [a, b]


def test_a_correction_on_a_later_reply_labels_the_turn_that_reply_answered(rt):
    cid, turns = conversation(rt, "How long does shipping take?", "And how do I return an item?")
    rt.feedback.record(message_id=reply_id(turns[1]), rating="down", corrected_sentiment="neutral")
    rt.feedback.record(message_id=reply_id(turns[0]), rating="down", corrected_sentiment="positive")
    assert sorted(label_rows(rt)) == [("And how do I return an item?", "neutral"),
                                      ("How long does shipping take?", "positive")]


def test_the_newest_correction_of_a_text_wins(rt, tmp_path):
    text = "Where is my parcel?"
    _a, [ta] = conversation(rt, text)
    _b, [tb] = conversation(rt, text)
    _c, [tc] = conversation(rt, "How long does shipping take?")
    rt.feedback.record(message_id=ta.message_id, rating="down", corrected_sentiment="negative")
    rt.feedback.record(message_id=tc.message_id, rating="down", corrected_sentiment="neutral")
    rt.feedback.record(message_id=reply_id(tb), rating="down", corrected_sentiment="positive")
    assert label_rows(rt) == [("How long does shipping take?", "neutral"), (text, "positive")]
    # the same message corrected twice: the later payload wins
    rt.feedback.record(message_id=ta.message_id, rating="down", corrected_sentiment="neutral",
                       comment="on second thought")
    assert label_rows(rt) == [("How long does shipping take?", "neutral"), (text, "neutral")]

    record = export(rt, "sentiment", tmp_path / "s.csv")
    assert [r["text"] for r in read_csv(tmp_path / "s.csv")].count(text) == 1
    assert record.rows == 2 and len(record.conversation_ids) == 2


def test_since_keeps_only_later_feedback(rt, tmp_path):
    _a, [ta] = conversation(rt, "The delivery was late again")
    _b, [tb] = conversation(rt, "How do I reset my password?")
    rt.feedback.record(message_id=ta.message_id, rating="down", corrected_sentiment="negative")
    cut = datetime.now(UTC)
    rt.feedback.record(message_id=tb.message_id, rating="down", corrected_sentiment="neutral")
    assert label_rows(rt, since=cut) == [("How do I reset my password?", "neutral")]
    assert len(label_rows(rt)) == 2
    record = export(rt, "sentiment", tmp_path / "s.csv", since=cut)
    assert record.rows == 1 and record.since == cut and record.until > cut
    assert label_rows(rt, since=datetime.now(UTC)) == []


def test_routes_split_by_language(rt):
    _e, [te] = conversation(rt, "The delivery was late again")
    _z, [tz] = conversation(rt, "我的订单在哪里？一直没有收到")
    assert (te.language, tz.language) == ("en", "zh")
    rt.feedback.record(message_id=te.message_id, rating="down", corrected_sentiment="negative")
    rt.feedback.record(message_id=reply_id(tz), rating="down", corrected_sentiment="negative")

    assert label_rows(rt, route="zh", route_languages=ROUTES) == [("我的订单在哪里？一直没有收到", "negative")]
    assert label_rows(rt, route="default", route_languages=ROUTES) == [("The delivery was late again", "negative")]
    # without a zh route every language is the default route's
    assert len(label_rows(rt, route="default")) == 2


# ---- chat ----------------------------------------------------------------------------

def test_chat_rows_are_up_voted_corrected_and_agent_replies_with_context(rt, tmp_path):
    greeting = ("assistant", "Hi! How can I help?")
    up, ut = conversation(rt, "How long does shipping take?", "How fast is express shipping?", history=[greeting])
    fix, [ft] = conversation(rt, "How do I reset my password?")
    agent, [at] = conversation(rt, "I want to talk to a human")
    assert at.escalate
    down, [dt] = conversation(rt, "How do I return an item?")

    rt.feedback.record(message_id=reply_id(ut[1]), rating="up")
    rt.feedback.record(message_id=reply_id(ft), rating="down",
                       corrected_reply="Use 'Forgot password' on the sign-in page; mail help@example.com if stuck.")
    rt.dialogue.agent_message(agent, "Hi, Ana here. Your parcel left today.", agent="ana")
    rt.feedback.record(message_id=reply_id(dt), rating="down", comment="useless")  # not a chat row

    got = rows(rt, "chat")
    assert [r.conversation_id for r in got] == [up, fix, agent]
    up_row, fix_row, agent_row = (r.data["messages"] for r in got)

    # the conversation before the up-voted reply; it starts with the customer, and the
    # earlier bot turn is shown with weight 0; the trained reply itself has no weight
    assert up_row == [
        {"role": "user", "content": "How long does shipping take?"},
        {"role": "assistant", "content": ut[0].reply.text, "weight": 0},
        {"role": "user", "content": "How fast is express shipping?"},
        {"role": "assistant", "content": ut[1].reply.text},
    ]
    assert fix_row == [
        {"role": "user", "content": "How do I reset my password?"},
        {"role": "assistant", "content": "Use 'Forgot password' on the sign-in page; mail [EMAIL] if stuck."},
    ]
    assert ft.reply.text not in str(fix_row)
    assert agent_row == [
        {"role": "user", "content": "I want to talk to a human"},
        {"role": "assistant", "content": at.reply.text, "weight": 0},
        {"role": "assistant", "content": "Hi, Ana here. Your parcel left today."},
    ]

    record = export(rt, "chat", tmp_path / "chat.jsonl")
    assert read_jsonl(tmp_path / "chat.jsonl") == [r.data for r in got]
    assert record.conversation_ids == [up, fix, agent]


def test_chat_context_is_the_last_messages_and_starts_with_the_customer(rt):
    texts = ["How long does shipping take?", "How do I return an item?", "How do I reset my password?",
             "Is standard shipping free?", "How fast is express shipping?"]
    _cid, turns = conversation(rt, *texts)
    assert all(t.reply is not None and not t.escalate for t in turns)
    rt.feedback.record(message_id=reply_id(turns[-1]), rating="up")
    [row] = rows(rt, "chat")
    messages = row.data["messages"]
    context = messages[:-1]
    # 9 earlier messages; the last 8 start with a bot reply, which is dropped
    assert len(context) == exports.CONTEXT_MESSAGES - 1
    assert context[0] == {"role": "user", "content": texts[1]}
    assert [m["role"] for m in context] == ["user", "assistant"] * 3 + ["user"]
    assert all(m.get("weight") == 0 for m in context if m["role"] == "assistant")
    assert all("weight" not in m for m in context if m["role"] == "user")
    assert messages[-1] == {"role": "assistant", "content": turns[-1].reply.text}


def test_the_same_chat_row_twice_is_exported_once(rt):
    cid, [t] = conversation(rt, "How long does shipping take?")
    rt.feedback.record(message_id=reply_id(t), rating="up")
    rt.feedback.record(message_id=reply_id(t), rating="up", comment="spot on")
    got = rows(rt, "chat")
    assert len(got) == 1 and got[0].conversation_id == cid


# ---- the file and its record ---------------------------------------------------------

def test_the_export_record_matches_the_file(rt, tmp_path):
    ids = []
    for text, label in [("The delivery was late again", "negative"), ("Thanks, that was great", "positive"),
                        ("How long does shipping take?", "neutral")]:
        cid, [t] = conversation(rt, text)
        rt.feedback.record(message_id=t.message_id, rating="down", corrected_sentiment=label)
        ids.append(cid)
    path = tmp_path / "nested" / "dir" / "sentiment.csv"
    record = export(rt, "sentiment", path)
    with rt.sessions() as s:
        stored = s.get(Export, record.id)
        assert stored.what == "sentiment" and stored.route == "default"
        assert stored.path == str(path.resolve())
        assert stored.rows == 3 == len(read_csv(path))
        assert stored.sha256 == sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
        assert stored.conversation_ids == ids  # one per row, in the file's order
        assert stored.until is not None and stored.retrain_run_id is None
        assert [e.id for e in exports.list_exports(s, what="sentiment")] == [record.id]
    assert not list(path.parent.glob(".*tmp*"))  # the temporary file was renamed


def test_an_empty_export_is_a_header_only_file(rt, tmp_path):
    record = export(rt, "sentiment", tmp_path / "s.csv")
    assert (tmp_path / "s.csv").read_text() == "text,label\n"
    assert record.rows == 0 and record.conversation_ids == [] and record.sha256 == sha256(tmp_path / "s.csv")
    record = export(rt, "chat", tmp_path / "c.jsonl")
    assert (tmp_path / "c.jsonl").read_bytes() == b"" and record.rows == 0


TRICKY = [
    'Hello, I said "no" twice, ok?',
    "first line\nsecond line, with a comma",
    "windows\r\nline ends",
    "an old mac\rline end",
    "退货，\"快递\"太慢了\n第二行",
    "a line\u2028separator and a next\u0085line",
]


@pytest.mark.parametrize("what", ["sentiment", "chat"])
def test_texts_with_commas_quotes_newlines_and_chinese_round_trip(rt, tmp_path, what):
    turns = []
    for text in TRICKY:
        _cid, [t] = conversation(rt, text)
        turns.append(t)
        rt.feedback.record(message_id=t.message_id, rating="down", corrected_sentiment="negative")
        if t.reply is not None:
            rt.feedback.record(message_id=reply_id(t), rating="up")
    path = tmp_path / f"out.{'jsonl' if what == 'chat' else 'csv'}"
    record = export(rt, what, path)
    back = read_export(path, what)
    if what == "sentiment":
        assert back == [{"text": t, "label": "negative"} for t in TRICKY]
        from finetune.data import read_examples  # what `supportbot retrain` trains on

        assert [(e.text, e.label) for e in read_examples(path)] == [(t, "negative") for t in TRICKY]
    else:
        assert all(turn.reply is not None for turn in turns)
        assert [row["messages"][0]["content"] for row in back] == TRICKY
    assert record.rows == len(back)
    # storage.export reads its own files back the same way (erasure rewrites them)
    assert exports.parse(what, path.read_bytes()) == back


def test_a_reply_both_up_voted_and_corrected_is_exported_once_as_corrected(rt):
    _cid, [turn] = conversation(rt, "How do I reset my password?")
    rt.feedback.record(message_id=reply_id(turn), rating="up")
    rt.feedback.record(message_id=reply_id(turn), rating="down", corrected_reply="Click 'Forgot password'.")
    [row] = rows(rt, "chat")
    assert row.data["messages"][-1] == {"role": "assistant", "content": "Click 'Forgot password'."}


# ---- issue 14: formula injection and file modes --------------------------------------

FORMULA_TEXTS = ['=HYPERLINK("http://x","y")', "+1 555", "-2 stars", "@SUM(A1)"]


def test_formula_texts_are_exported_escaped_read_back_as_they_were_and_erasable(rt, tmp_path):
    import csv

    from finetune.data import read_examples
    from storage import erasure

    ids = []
    for text in FORMULA_TEXTS + ["The delivery was late again"]:
        cid, [t] = conversation(rt, text)
        rt.feedback.record(message_id=t.message_id, rating="down", corrected_sentiment="negative")
        ids.append(cid)
    path = tmp_path / "sentiment.csv"
    record = export(rt, "sentiment", path)
    assert record.rows == 5

    # in the file, as a spreadsheet reads it: no cell starts like a formula
    with open(path, encoding="utf-8", newline="") as fh:
        cells = [row["text"] for row in csv.DictReader(fh)]
    assert cells == ["'" + t for t in FORMULA_TEXTS] + ["The delivery was late again"]
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)

    # storage.export and the training reader get the original texts
    original = FORMULA_TEXTS + ["The delivery was late again"]
    assert exports.parse("sentiment", path.read_bytes()) == [{"text": t, "label": "negative"} for t in original]
    assert [e.text for e in read_examples(path)] == original

    # erasing one of them rewrites the file without it; the others stay escaped
    with rt.sessions.begin() as s:
        assert erasure.erase_conversation(s, conversation_id=ids[0])
    with open(path, encoding="utf-8", newline="") as fh:
        cells = [row["text"] for row in csv.DictReader(fh)]
    assert cells == ["'" + t for t in FORMULA_TEXTS[1:]] + ["The delivery was late again"]
    assert [r["text"] for r in exports.parse("sentiment", path.read_bytes())] == original[1:]
    with rt.sessions() as s:
        stored = s.get(Export, record.id)
        assert stored.rows == 4 and stored.conversation_ids == ids[1:]
        assert stored.sha256 == sha256(path)


def test_render_and_parse_round_trip_formula_labels_too():
    rows = [{"text": t, "label": t} for t in FORMULA_TEXTS + ["'=already quoted", "plain"]]
    content = exports.render("sentiment", rows)
    assert b"\n=" not in content and b"\n+" not in content and b"\n-" not in content
    assert exports.parse("sentiment", content) == rows


@pytest.fixture
def umask_022():
    import os

    old = os.umask(0o022)
    yield
    os.umask(old)


def test_export_files_are_private_whatever_the_umask(rt, tmp_path, umask_022):
    import stat

    for what, name in [("sentiment", "s.csv"), ("chat", "c.jsonl")]:
        path = tmp_path / "out" / name
        export(rt, what, path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, what
    # a file that was there before (0644) is replaced by a private one
    path = tmp_path / "out" / "old.csv"
    path.write_text("text,label\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    exports.write_atomic(path, b"text,label\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_leftover_temporary_file_does_not_lend_its_mode(tmp_path, umask_022):
    import os
    import stat

    path = tmp_path / "s.csv"
    leftover = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    leftover.write_bytes(b"half a file")
    os.chmod(leftover, 0o666)
    exports.write_atomic(path, b"text,label\n")
    assert path.read_bytes() == b"text,label\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not leftover.exists()
