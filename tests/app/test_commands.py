"""`supportbot ...` through app.cli.main(argv), which returns the exit code."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bot.api.schemas import SentimentPublic
from app.cli import main
from storage.db import current_revision, head_revision

TEXTS = ["the phone is great", "where is my order", "服务太差了"]


@pytest.fixture
def model_args(tiny_classifier_dir, tmp_path):
    return ["--home", str(tmp_path / "home"), "--sentiment-model", str(tiny_classifier_dir),
            "--sentiment-model-zh", "none"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("supportbot: error: ")
    return err[0]


def test_sentiment_prints_one_line_per_text_in_order(capsys, model_args, tiny_classifier_dir, tmp_path):
    assert main(["sentiment", *model_args, *TEXTS]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    from bot.classifier import TextClassifier

    clf = TextClassifier.load(str(tiny_classifier_dir), tmp_path)
    proba = clf.predict_proba(TEXTS)
    for line, text, row, lang in zip(lines, TEXTS, proba, ["en", "en", "zh"]):
        label, score, language, printed = line.split(maxsplit=3)
        assert printed == text
        assert label == clf.labels[int(np.argmax(row))]
        assert float(score) == pytest.approx(float(row.max()), abs=1e-3)
        assert language == f"[{lang}]"


def test_sentiment_json_is_the_api_object(capsys, model_args, tiny_classifier_dir):
    assert main(["sentiment", *model_args, "--json", *TEXTS]) == 0
    body = json.loads(capsys.readouterr().out)
    SentimentPublic.model_validate(body)  # the API's response schema
    assert body["model"] == str(tiny_classifier_dir)
    assert [r["language"] for r in body["results"]] == ["en", "en", "zh"]
    for r in body["results"]:
        assert set(r) == {"label", "score", "scores", "language"}
        assert set(r["scores"]) == {"negative", "neutral", "positive"}
        assert r["score"] == pytest.approx(r["scores"][r["label"]])


def test_sentiment_explain_json(capsys, model_args):
    assert main(["sentiment", *model_args, "--json", "--explain", "bad phone"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert [e["token"] for e in result["explanation"]] == ["bad", "phone"]


def test_sentiment_reads_a_file(capsys, model_args, tmp_path):
    f = tmp_path / "texts.txt"
    f.write_text("good\n\n  bad  \n", encoding="utf-8")
    assert main(["sentiment", *model_args, "first", "--file", str(f)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(maxsplit=3)[3] for line in lines] == ["first", "good", "bad"]


def test_sentiment_without_texts_exits_2(capsys, model_args):
    assert main(["sentiment", *model_args]) == 2
    assert "give texts to classify" in _one_line_error(capsys)
    assert capsys.readouterr().out == ""


def test_sentiment_missing_file_exits_2(capsys, model_args, tmp_path):
    assert main(["sentiment", *model_args, "--file", str(tmp_path / "nope.txt")]) == 2
    assert "no such file" in _one_line_error(capsys)


def test_sentiment_blank_text_exits_2(capsys, model_args):
    assert main(["sentiment", *model_args, "good", "   "]) == 2
    assert "texts[1]" in _one_line_error(capsys)


def test_sentiment_unknown_model_exits_2(capsys, tmp_path):
    argv = ["sentiment", "--home", str(tmp_path), "--sentiment-model", "no-such-model", "--sentiment-model-zh", "none", "hi"]
    assert main(argv) == 2
    assert "unknown model 'no-such-model'" in _one_line_error(capsys)


def test_db_upgrade_on_a_fresh_home(capsys, tmp_path):
    home = tmp_path / "home"
    assert main(["db", "upgrade", "--home", str(home)]) == 0
    url = f"sqlite:///{home / 'supportbot.db'}"
    assert (home / "supportbot.db").is_file()
    assert current_revision(url) == head_revision() is not None
    assert capsys.readouterr().out.strip() == f"database at revision {head_revision()}"
    assert main(["db", "upgrade", "--home", str(home)]) == 0  # idempotent


def test_db_upgrade_honours_database_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    assert main(["db", "upgrade", "--home", str(tmp_path / "home"), "--database-url", url]) == 0
    assert current_revision(url) == head_revision()
    assert not (tmp_path / "home" / "supportbot.db").exists()


def test_keys_create_list_revoke(capsys, tmp_path):
    home = ["--home", str(tmp_path / "home")]
    assert main(["keys", "create", "ci", *home]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    assert key.startswith("sb_") and len(key) > 20
    assert "created customer key 'ci'" in out.err
    assert main(["keys", "create", "boss", "--admin", *home]) == 0
    capsys.readouterr()

    assert main(["keys", "list", *home]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()]
    assert sorted((r[0], r[1], r[3]) for r in rows) == [("boss", "admin", "active"), ("ci", "customer", "active")]
    assert key not in "".join("".join(r) for r in rows)  # only a prefix is shown
    assert any(r[2].startswith(key[:10]) for r in rows)

    assert main(["keys", "revoke", "ci", *home]) == 0
    capsys.readouterr()
    assert main(["keys", "list", *home]) == 0
    states = dict((r.split("\t")[0], r.split("\t")[3]) for r in capsys.readouterr().out.strip().splitlines())
    assert states == {"boss": "active", "ci": "revoked"}

    from storage.db import make_engine, make_session_factory
    from storage.repositories import api_keys

    engine = make_engine(f"sqlite:///{tmp_path / 'home' / 'supportbot.db'}")
    try:
        with make_session_factory(engine)() as session:
            assert api_keys.verify_api_key(session, key=key) is None  # revoked
    finally:
        engine.dispose()


def test_keys_errors(capsys, tmp_path):
    home = ["--home", str(tmp_path / "home")]
    assert main(["keys", "revoke", "nobody", *home]) == 2
    assert "no API key named 'nobody'" in _one_line_error(capsys)
    assert main(["keys", "create", "ci", *home]) == 0
    capsys.readouterr()
    assert main(["keys", "create", "ci", *home]) == 2
    assert "exists already" in _one_line_error(capsys)
    with pytest.raises(SystemExit) as info:
        main(["keys", "create", *home])
    assert info.value.code == 2


def test_models_list(capsys, tmp_path):
    assert main(["models", "list", "--home", str(tmp_path)]) == 0
    # The packaged and shipped models come first; the database's versions follow after a
    # blank line (tests/app/test_commands_models.py).
    lines = capsys.readouterr().out.strip().split("\n\n")[0].splitlines()
    kinds = {line.split()[0]: line.split()[1] for line in lines}
    assert kinds == {"minilm-l6": "packaged", "smollm2-135m": "packaged", "gemma3-270m": "packaged", "me5-small": "packaged",
                     "sentiment-en": "shipped", "sentiment-zh": "shipped", "sentiment-zh-me5": "shipped", "intent-bitext": "shipped", "intent-me5": "shipped",
                     "chat-bitext": "shipped"}


def test_unknown_command_exits_2():
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_finetune_bad_flags_exit_2_with_one_line(capsys, tmp_path):
    argv = ["finetune", "classifier", "--train", str(tmp_path / "missing.csv"), "--bits", "3",
            "--output", str(tmp_path / "out")]
    assert main(argv) == 2
    line = _one_line_error(capsys)
    assert "missing.csv: no such file" in line and "--bits must be 4 or 8" in line


def test_finetune_chat_with_a_missing_file_is_a_one_line_error(capsys, tmp_path):
    assert main(["finetune", "chat", "--train", str(tmp_path / "x.jsonl"), "--output", str(tmp_path / "out")]) == 2
    assert "x.jsonl" in _one_line_error(capsys)


def test_users_commands_keep_their_form_and_write_the_database(tmp_path, monkeypatch, capsys):
    """`supportbot users add/list/remove` as before; the users are rows every worker reads."""
    import io

    from core.config import settings_with
    from bot.runtime import Runtime
    from ui.auth import Access

    home = ["--home", str(tmp_path)]
    monkeypatch.setattr("sys.stdin", io.StringIO("agent-password\n"))
    assert main(["users", "add", "ana", "--role", "agent", "--password-stdin", *home]) == 0
    assert main(["users", "list", *home]) == 0
    assert capsys.readouterr().out.splitlines() == ["ana\tagent"]
    assert not (tmp_path / "ui_users").exists()
    runtime = Runtime.start(settings_with(home=tmp_path))
    try:
        assert Access(runtime.sessions).check_login("ana", "agent-password")
        assert main(["users", "remove", "ana", *home]) == 0
        assert Access(runtime.sessions).role("ana") == "admin"  # no users left: the UI is open again
    finally:
        runtime.close()
