"""core/adapter_artifact.py: the one reader and writer of supportbot.json."""

from __future__ import annotations

import json

import pytest

from core.adapter_artifact import META_FILE, check_meta, is_adapter_dir, load_meta, read_meta, write_meta
from core.errors import InputError, ModelLoadError


def test_written_meta_reads_back_in_its_key_order(tmp_path):
    meta = {"format": 1, "task": "chat", "version": "v", "base": "smollm2-135m", "note": "中文"}
    assert not is_adapter_dir(tmp_path)
    write_meta(tmp_path, meta)
    assert is_adapter_dir(tmp_path)
    text = (tmp_path / META_FILE).read_text(encoding="utf-8")
    assert text == json.dumps(meta, indent=2, ensure_ascii=False)  # readable, not \\u-escaped
    assert list(load_meta(tmp_path)) == list(meta)
    assert [p.name for p in tmp_path.iterdir()] == [META_FILE]  # no temporary file left


@pytest.mark.parametrize("content, needle", [
    ("{not json", "unreadable supportbot.json"),
    ("[1, 2]", "unreadable supportbot.json (supportbot.json is not a JSON object)"),
    (json.dumps({"task": "intent"}), "lacks base: not a supportbot adapter"),
])
def test_read_meta_names_what_is_wrong(tmp_path, content, needle):
    (tmp_path / META_FILE).write_text(content)
    with pytest.raises(ModelLoadError) as exc:
        read_meta(tmp_path)
    assert needle in str(exc.value) and str(tmp_path) in str(exc.value)


def test_read_meta_of_another_task(tmp_path):
    write_meta(tmp_path, {"task": "sentiment", "base": "minilm-l6"})
    assert read_meta(tmp_path, task="sentiment")["base"] == "minilm-l6"
    with pytest.raises(ModelLoadError, match="is not a chat adapter .task 'sentiment'.: give a chat model"):
        read_meta(tmp_path, task="chat")


def test_check_meta_before_serving(tmp_path):
    with pytest.raises(InputError, match="^v1: no supportbot.json; not a supportbot adapter directory$"):
        check_meta(tmp_path, "intent", "v1")
    (tmp_path / META_FILE).write_text('"text"')
    with pytest.raises(InputError, match="^v1: supportbot.json is not a JSON object$"):
        check_meta(tmp_path, "intent", "v1")
    write_meta(tmp_path, {"task": "intent", "base": "minilm-l6"})
    assert check_meta(tmp_path, "intent", "v1")["task"] == "intent"
    with pytest.raises(InputError, match="a model for the intent task, not sentiment"):
        check_meta(tmp_path, "sentiment", "v1")
