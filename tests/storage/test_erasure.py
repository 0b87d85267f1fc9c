"""storage.erasure: erasing a conversation removes it from the database and from every
export file still on disk (read back here), through the library, the API
(DELETE /v1/conversations/{id}) and the CLI; purge erases only idle conversations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.server import create_app
from app.cli import main as cli
from fixtures.dialogue import make_runtime
from fixtures.env import clean_supportbot_env
from fixtures.feedback import conversation, counts, read_export, reply_id, sha256
from storage import erasure
from storage import export as exports
from storage.models import Conversation, Export

A_TEXTS = ("How long does shipping take?", "Alpha: how fast is express shipping?")
B_TEXTS = ("How do I reset my password?",)


@pytest.fixture
def home(monkeypatch, tmp_path):
    clean_supportbot_env(monkeypatch, tmp_path)
    return tmp_path / "home"


@pytest.fixture
def rt(home):
    runtime = make_runtime(home)
    yield runtime
    runtime.close()


def two_conversations(rt) -> dict:
    """A: two turns, a label correction, an up-voted reply, an agent reply; B: one turn, a
    label correction and a corrected reply. Returns ids and feedback ids."""
    a, ta = conversation(rt, *A_TEXTS)
    b, [tb] = conversation(rt, *B_TEXTS)
    fb_a = [rt.feedback.record(message_id=ta[0].message_id, rating="down", corrected_sentiment="negative"),
            rt.feedback.record(message_id=reply_id(ta[1]), rating="up")]
    fb_b = [rt.feedback.record(message_id=tb.message_id, rating="down", corrected_sentiment="neutral"),
            rt.feedback.record(message_id=reply_id(tb), rating="down", corrected_reply="Use 'Forgot password'.")]
    rt.dialogue.agent_message(a, "Alpha agent here: it ships today.", agent="ana")
    return {"a": a, "b": b, "fb_a": fb_a, "fb_b": fb_b}


def export(rt, what, path) -> str:
    with rt.sessions.begin() as s:
        return exports.export_training_set(s, what=what, path=path).id


def records(rt) -> dict[str, Export]:
    with rt.sessions() as s:
        out = {e.id: e for e in s.scalars(sa.select(Export))}
        s.expunge_all()
        return out


def texts_of(data: list[dict], what: str) -> list[str]:
    if what == "chat":
        return [m["content"] for row in data for m in row["messages"]]
    return [row["text"] for row in data]


def assert_records_match_files(rt) -> None:
    for record in records(rt).values():
        data = read_export(record.path, record.what)
        assert record.rows == len(data) == len(record.conversation_ids)
        assert record.sha256 == sha256(record.path)


def make_exports(rt, tmp_path, world) -> dict[str, tuple[str, str]]:
    """Two exports, each holding rows of both conversations: export id -> (what, path)."""
    out = {}
    for what, name in [("sentiment", "sentiment.csv"), ("chat", "chat.jsonl")]:
        path = tmp_path / "exports" / name
        out[export(rt, what, path)] = (what, str(path))
    for record in records(rt).values():
        assert {world["a"], world["b"]} <= set(record.conversation_ids), record.what
    return out


def assert_erased(rt, world, files) -> None:
    a, b = world["a"], world["b"]
    assert counts(rt, a, world["fb_a"]) == {"conversations": 0, "messages": 0, "feedback": 0}
    assert counts(rt, b, world["fb_b"]) == {"conversations": 1, "messages": 2, "feedback": 2}
    recs = records(rt)
    for export_id, (what, path) in files.items():
        data = read_export(path, what)
        texts = " | ".join(texts_of(data, what))
        assert "Alpha" not in texts and A_TEXTS[0] not in texts, texts
        assert B_TEXTS[0] in texts
        assert set(recs[export_id].conversation_ids) == {b}
    assert_records_match_files(rt)


def test_erase_rewrites_every_export_and_the_database(rt, tmp_path):
    world = two_conversations(rt)
    files = make_exports(rt, tmp_path, world)
    before = {i: (r.rows, r.sha256) for i, r in records(rt).items()}
    # sentiment: A's and B's corrected turns; chat: A's up-voted reply and agent reply, B's corrected reply
    assert [before[i][0] for i in files] == [2, 3]

    with rt.sessions.begin() as s:
        assert erasure.erase_conversation(s, conversation_id=world["a"]) is True
    assert_erased(rt, world, files)
    after = records(rt)
    assert [after[i].rows for i in files] == [1, 1]
    assert all(after[i].sha256 != before[i][1] for i in files)

    # nothing of A comes back in a new export
    for what in ("sentiment", "chat"):
        path = tmp_path / f"again-{what}"
        new_id = export(rt, what, path)
        assert "Alpha" not in str(read_export(path, what)) and A_TEXTS[0] not in str(read_export(path, what))
        assert records(rt)[new_id].conversation_ids == [world["b"]]

    with rt.sessions.begin() as s:  # erasing again: nothing to do
        assert erasure.erase_conversation(s, conversation_id=world["a"]) is False


def test_an_export_whose_file_is_gone_is_only_re_recorded(rt, tmp_path):
    world = two_conversations(rt)
    files = make_exports(rt, tmp_path, world)
    (sentiment_id, (_what, path)), = [(i, f) for i, f in files.items() if f[0] == "sentiment"]
    old_sha = records(rt)[sentiment_id].sha256
    (tmp_path / "exports" / "sentiment.csv").unlink()
    with rt.sessions.begin() as s:
        assert erasure.erase_conversation(s, conversation_id=world["a"])
    record = records(rt)[sentiment_id]
    assert record.conversation_ids == [world["b"]] and record.rows == 1 and record.sha256 == old_sha
    assert not (tmp_path / "exports" / "sentiment.csv").exists()


@pytest.mark.parametrize("edited", ["sentiment", "chat"])
def test_an_export_edited_by_hand_stops_the_erasure_before_anything_changes(rt, tmp_path, edited):
    world = two_conversations(rt)
    files = make_exports(rt, tmp_path, world)
    before = {path: (open(path, "rb").read()) for _what, path in files.values()}
    [path] = [p for what, p in files.values() if what == edited]
    extra = "a row added by hand,positive\n" if edited == "sentiment" else '{"messages": []}\n'
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(extra)
    with pytest.raises(exports.ExportEdited, match="edited by hand"):
        with rt.sessions.begin() as s:
            erasure.erase_conversation(s, conversation_id=world["a"])
    assert counts(rt, world["a"], world["fb_a"])["conversations"] == 1
    # no file was rewritten: every other one still matches its record
    for other_what, other in files.values():
        if other != path:
            assert open(other, "rb").read() == before[other], other_what
    assert {r.sha256 for r in records(rt).values()} >= {sha256(p) for p in before if p != path}

    # once the file is restored, the erasure goes through
    with open(path, "wb") as fh:
        fh.write(before[path])
    with rt.sessions.begin() as s:
        assert erasure.erase_conversation(s, conversation_id=world["a"])
    assert_erased(rt, world, files)


def test_delete_through_the_api_does_the_same(rt, tmp_path):
    world = two_conversations(rt)
    files = make_exports(rt, tmp_path, world)
    with TestClient(create_app(rt, ui=False)) as client:
        assert client.delete(f"/v1/conversations/{world['a']}").status_code == 204
        assert client.get(f"/v1/conversations/{world['a']}").status_code == 404
        assert client.delete(f"/v1/conversations/{world['a']}").status_code == 404
        assert client.get(f"/v1/conversations/{world['b']}").status_code == 200
    assert_erased(rt, world, files)


def _idle(rt, conversation_id: str, days: float) -> None:
    with rt.sessions.begin() as s:
        s.execute(sa.update(Conversation).where(Conversation.id == conversation_id)
                  .values(updated_at=datetime.now(UTC) - timedelta(days=days)))


def test_purge_erases_only_idle_conversations(rt, tmp_path):
    world = two_conversations(rt)
    files = make_exports(rt, tmp_path, world)
    _idle(rt, world["a"], days=40)
    _idle(rt, world["b"], days=10)
    with rt.sessions.begin() as s:
        assert erasure.purge(s, older_than=datetime.now(UTC) - timedelta(days=30)) == 1
    assert_erased(rt, world, files)
    with rt.sessions.begin() as s:
        assert erasure.purge(s, older_than=datetime.now(UTC) - timedelta(days=30)) == 0
    assert counts(rt, world["b"])["conversations"] == 1


# ---- the CLI ---------------------------------------------------------------------------

def test_cli_erase(rt, home, tmp_path, capsys):
    world = two_conversations(rt)
    files = make_exports(rt, tmp_path, world)
    capsys.readouterr()
    assert cli(["conversations", "erase", world["a"], "--home", str(home)]) == 0
    assert world["a"] in capsys.readouterr().err
    assert_erased(rt, world, files)

    assert cli(["conversations", "erase", "no-such-id", "--home", str(home)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["supportbot: error: no conversation 'no-such-id'"]
    assert cli(["conversations", "erase", "--home", str(home)]) == 2  # no id
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert counts(rt, world["b"])["conversations"] == 1


def test_cli_purge(rt, home, tmp_path, capsys):
    world = two_conversations(rt)
    files = make_exports(rt, tmp_path, world)
    _idle(rt, world["a"], days=40)
    assert cli(["conversations", "purge", "--older-than", "30", "--home", str(home)]) == 0
    assert "erased 1 conversation" in capsys.readouterr().err
    assert_erased(rt, world, files)


def test_cli_db_export(rt, home, tmp_path, capsys):
    world = two_conversations(rt)
    out = tmp_path / "cli" / "sentiment.csv"
    capsys.readouterr()
    assert cli(["db", "export", "--what", "sentiment", "--out", str(out), "--home", str(home)]) == 0
    err = capsys.readouterr().err
    assert f"exported 2 rows to {out.resolve()}" in err
    assert read_export(out, "sentiment") == [{"text": A_TEXTS[0], "label": "negative"},
                                             {"text": B_TEXTS[0], "label": "neutral"}]
    [record] = records(rt).values()
    assert record.path == str(out.resolve()) and record.sha256 == sha256(out) and record.sha256[:16] in err
    assert record.conversation_ids == [world["a"], world["b"]]

    chat = tmp_path / "cli" / "chat.jsonl"
    assert cli(["db", "export", "--what", "chat", "--out", str(chat), "--home", str(home)]) == 0
    assert "exported 3 rows" in capsys.readouterr().err and len(read_export(chat, "chat")) == 3

    assert cli(["db", "export", "--what", "sentiment", "--home", str(home)]) == 2  # no --out
    assert capsys.readouterr().err.strip().startswith("supportbot: error: db export needs")
