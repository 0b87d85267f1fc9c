"""`supportbot models list | activate VERSION | rollback TASK` through app.cli.main(argv),
over a real SQLite file under --home."""

from __future__ import annotations

import pytest

from app.cli import main
from core.config import settings_with
from fixtures.adapters import truncate_weights, write_adapter
from storage.db import make_engine, make_session_factory, upgrade
from storage.repositories import model_versions as repo


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def sessions(home):
    home.mkdir()
    url = settings_with(home=home).resolved_database_url
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def register(sessions, tmp_path, name, task="sentiment", **metrics):
    with sessions() as s:
        v = repo.create_model_version(s, task=task, name=name, path=str(write_adapter(tmp_path / name, task=task)),
                                      metrics=metrics)
        s.commit()
        return v.id


def section(out: str, header: str) -> list[str]:
    """The lines of `models list` under a 'task/route  (...)' header."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header + "  "))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        block.append(line)
    return block


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("supportbot: error: "), err
    return err[0]


def test_list_shows_packaged_models_and_the_configured_defaults(capsys, home):
    assert main(["models", "list", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert "minilm-l6" in out and "packaged" in out and "sentiment-en" in out and "shipped" in out
    assert section(out, "sentiment/default") == [
        "sentiment/default  (no version active; serving the configured default: sentiment-en)"]
    assert section(out, "sentiment/zh")[0].endswith("configured default: sentiment-zh-me5)")
    assert section(out, "chat/default")[0].endswith("configured default: chat-bitext)")

    assert main(["models", "list", "--home", str(home), "--sentiment-model-zh", "none"]) == 0
    out = capsys.readouterr().out
    assert "sentiment/zh" not in out and "sentiment/default  (" in out


def test_activate_list_rollback_round_trip(capsys, home, sessions, tmp_path):
    vid = register(sessions, tmp_path, "sentiment-v9", macro_f1=0.9123, accuracy=0.95)
    assert main(["models", "activate", "sentiment-v9", "--home", str(home)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"sentiment/default now serves sentiment-v9 ({tmp_path / 'sentiment-v9'})")

    assert main(["models", "list", "--home", str(home)]) == 0
    block = section(capsys.readouterr().out, "sentiment/default")
    assert block[0] == "sentiment/default  (active: sentiment-v9)"
    active = [line for line in block if line.startswith("  * ")]
    assert len(active) == 1 and "sentiment-v9" in active[0] and "macro_f1=0.9123" in active[0]
    assert vid in active[0] and str(tmp_path / "sentiment-v9") in active[0]
    baseline = [line for line in block if "sentiment-en" in line]
    assert len(baseline) == 1 and baseline[0].split()[:2] == ["retired", "sentiment-en"]

    assert main(["models", "rollback", "sentiment", "--home", str(home)]) == 0
    assert capsys.readouterr().out.startswith("sentiment/default now serves sentiment-en (sentiment-en)")
    with sessions() as s:
        assert repo.get_active_model_version(s, task="sentiment").name == "sentiment-en"
        assert repo.get_model_version(s, version_id=vid).status == "retired"


def test_activate_needs_the_task_when_a_name_is_in_two_tasks(capsys, home, sessions, tmp_path):
    register(sessions, tmp_path / "s", "v1")
    register(sessions, tmp_path / "i", "v1", task="intent")
    assert main(["models", "activate", "v1", "--home", str(home)]) == 2
    assert "several tasks (intent, sentiment)" in one_line_error(capsys)
    assert main(["models", "activate", "v1", "--task", "intent", "--home", str(home)]) == 0
    assert capsys.readouterr().out.startswith("intent/default now serves v1")
    with sessions() as s:
        assert repo.get_active_model_version(s, task="intent").name == "v1"
        assert repo.get_active_model_version(s, task="sentiment") is None


@pytest.mark.parametrize("argv, message", [
    (["models", "activate", "nope"], "no model version 'nope'"),
    (["models", "activate"], "needs exactly one VERSION"),
    (["models", "rollback", "chat"], "nothing to roll back to: chat/default"),
    (["models", "rollback", "summary"], "unknown task 'summary'"),
    (["models", "rollback", "sentiment", "--route", "zh"], "nothing to roll back to: sentiment/zh"),
])
def test_bad_input_is_a_one_line_error(capsys, home, argv, message):
    assert main([*argv, "--home", str(home)]) == 2
    assert message in one_line_error(capsys)


def test_an_unloadable_version_is_refused_and_nothing_is_stored(capsys, home, sessions, tmp_path):
    register(sessions, tmp_path, "sentiment-v9")
    truncate_weights(tmp_path / "sentiment-v9")
    assert main(["models", "activate", "sentiment-v9", "--home", str(home)]) == 2
    assert "truncated or corrupted" in one_line_error(capsys)
    with sessions() as s:
        assert [v.name for v in repo.list_model_versions(s)] == ["sentiment-v9"]
        assert repo.get_active_model_version(s, task="sentiment") is None
