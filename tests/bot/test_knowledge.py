from __future__ import annotations

import json

import pytest

from core.errors import InputError
from bot.knowledge import DEMO_KB_DIR, read_article_files, read_articles


def test_jsonl_and_markdown(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"id": "en-a", "title": "A", "body": "Body A", "language": "en",
                                                  "tags": ["track_order"]}) + "\n\n", encoding="utf-8")
    (tmp_path / "zh-b.md").write_text("# 发票\n\n您可以下载电子发票。\n", encoding="utf-8")
    (tmp_path / "c.md").write_text("---\nid: en-c\ntitle: C title\nlanguage: en\ntags: [get_refund]\n---\nBody C\n")
    articles = {a.id: a for a in read_article_files([tmp_path])}
    assert articles["en-a"].tags == ["track_order"]
    assert (articles["zh-b"].title, articles["zh-b"].body, articles["zh-b"].language) == ("发票", "您可以下载电子发票。", "zh")
    assert (articles["en-c"].title, articles["en-c"].tags) == ("C title", ["get_refund"])


@pytest.mark.parametrize("line, needle", [
    ("{not json", "a.jsonl:1: not valid JSON"),
    (json.dumps({"id": "x", "title": "t"}), "a.jsonl:1: missing body"),
    (json.dumps({"id": "bad id!", "title": "t", "body": "b"}), "id 'bad id!'"),
    (json.dumps({"id": "x", "title": "t", "body": "b", "tags": [1]}), "tags must be a list of strings"),
    ("[1, 2]", "expected a JSON object"),
])
def test_bad_files_name_the_file_and_line(tmp_path, line, needle):
    (tmp_path / "a.jsonl").write_text(line + "\n")
    with pytest.raises(InputError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        read_articles(tmp_path / "a.jsonl")


def test_other_file_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_articles(tmp_path / "missing.jsonl")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match="unknown format"):
        read_articles(tmp_path / "x.txt")
    (tmp_path / "y.jsonl").write_bytes(b"\xff\xfe")
    with pytest.raises(InputError, match="not UTF-8"):
        read_articles(tmp_path / "y.jsonl")
    row = json.dumps({"id": "same", "title": "t", "body": "b"})
    (tmp_path / "d1.jsonl").write_text(row)
    (tmp_path / "d2.jsonl").write_text(row)
    with pytest.raises(InputError, match="also in"):
        read_article_files([tmp_path / "d1.jsonl", tmp_path / "d2.jsonl"])


def test_the_demo_knowledge_base_covers_the_shop_in_both_languages():
    articles = read_article_files([DEMO_KB_DIR])
    by_lang = {}
    for a in articles:
        by_lang.setdefault(a.language, set()).add(a.id.split("-", 1)[1])
    assert set(by_lang) == {"en", "zh"} and by_lang["en"] == by_lang["zh"]  # the same topics in both
    topics = " ".join(sorted(by_lang["en"]))
    for topic in ("order", "shipping", "return", "refund", "payment", "invoice", "account", "plus"):
        assert topic in topics, topic
