"""Issue 19: several hosts on one database, each with its own home and export files. A
conversation erased on host A must leave the export files of host B too: B applies the
erasures recorded in the database (`erasures`) at its next start, export or
model-versions poll, and remembers in <home>/host.json what it applied. Runs on a SQLite
file shared by both homes, and on PostgreSQL with SUPPORTBOT_TEST_POSTGRES_URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.cli import main as cli
from fixtures.dialogue import make_runtime
from fixtures.env import clean_supportbot_env
from fixtures.feedback import conversation, counts, read_export, sha256
from storage import erasure
from storage import export as exports
from storage.models import Erasure, Export

NEEDLE = "Quokka-7731 my parcel never reached Zebra Lane"  # the erased customer's text
KEPT = "How do I reset my password?"


@pytest.fixture
def hosts(database_url, tmp_path, monkeypatch):
    """Two runtimes, host A and host B, each with its own home, on one database."""
    clean_supportbot_env(monkeypatch, tmp_path)
    a = make_runtime(tmp_path / "host-a", database_url=database_url)
    b = make_runtime(tmp_path / "host-b", database_url=database_url)
    yield a, b
    a.close()
    b.close()


def world(rt) -> dict:
    """Two conversations whose customer turns got a corrected label and an agent reply
    (rows of the sentiment and chat exports)."""
    out = {}
    for name, text in (("erased", NEEDLE), ("kept", KEPT)):
        cid, [turn] = conversation(rt, text)
        rt.feedback.record(message_id=turn.message_id, rating="down", corrected_sentiment="negative")
        rt.dialogue.agent_message(cid, f"Agent here about {name}.", agent="ana")
        out[name] = cid
    return out


def cli_on(rt, *argv: str) -> int:
    return cli([*argv, "--home", str(rt.settings.home), "--database-url", rt.settings.resolved_database_url])


def export_on(rt, name: str) -> dict[str, Path]:
    """`supportbot db export` of both kinds into the host's home."""
    files = {}
    for what in ("sentiment", "chat"):
        files[what] = rt.settings.home / "exports" / f"{name}-{what}"
        assert cli_on(rt, "db", "export", "--what", what, "--out", str(files[what])) == 0
    return files


def holding(home: Path, needle: str = NEEDLE) -> list[str]:
    """Every file under `home` whose bytes contain the needle."""
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and needle.encode() in p.read_bytes())


def exports_of(rt) -> list[Export]:
    with rt.sessions() as s:
        out = list(s.scalars(sa.select(Export)))
        s.expunge_all()
        return out


def assert_records_match_files(rt) -> None:
    for record in exports_of(rt):
        if Path(record.path).is_file() and record.host == rt.host_id:
            assert record.rows == len(read_export(Path(record.path), record.what)) == len(record.conversation_ids)
            assert record.sha256 == sha256(Path(record.path))


def test_an_erasure_on_host_a_reaches_host_b_export_files(hosts):
    a, b = hosts
    ids = world(a)
    files_a, files_b = export_on(a, "a"), export_on(b, "b")
    assert holding(b.settings.home) == ["exports/b-chat", "exports/b-sentiment"]
    assert holding(a.settings.home) == ["exports/a-chat", "exports/a-sentiment"]
    assert a.host_id != b.host_id
    assert {r.host for r in exports_of(a)} == {a.host_id, b.host_id}

    assert cli_on(a, "conversations", "erase", ids["erased"]) == 0
    assert counts(a, ids["erased"])["conversations"] == 0
    assert holding(a.settings.home) == []  # the erasing host: at once
    assert holding(b.settings.home) == ["exports/b-chat", "exports/b-sentiment"]  # the attack: B still has it
    with b.sessions() as s:  # only a hash of the id is kept
        assert s.scalar(sa.select(Erasure.conversation_sha256)) == erasure.conversation_sha256(ids["erased"])

    assert b.apply_erasures() == 2  # B's sweep: a sentiment row, a chat row (the agent's reply after the turn)
    assert holding(b.settings.home) == [] and holding(a.settings.home) == []
    for files in (files_a, files_b):
        assert [r["text"] for r in read_export(files["sentiment"], "sentiment")] == [KEPT]
        assert KEPT in json.dumps(read_export(files["chat"], "chat"))
    assert_records_match_files(a)
    assert_records_match_files(b)

    before = {p: p.read_bytes() for p in files_b.values()}
    state = (b.settings.home / "host.json").read_text()
    assert b.apply_erasures() == 0 and a.apply_erasures() == 0  # a second sweep: nothing
    assert {p: p.read_bytes() for p in files_b.values()} == before
    assert (b.settings.home / "host.json").read_text() == state


def test_host_b_applies_it_at_its_next_start_and_before_an_export(hosts, capsys):
    a, b = hosts
    ids = world(a)
    export_on(b, "b")
    assert cli_on(a, "conversations", "erase", ids["erased"]) == 0
    assert holding(b.settings.home)
    assert cli_on(b, "db", "export", "--what", "intent", "--out", str(b.settings.home / "exports" / "intent")) == 0
    assert holding(b.settings.home) == []

    # purge on A, the next model-versions poll on B
    export_on(b, "again")
    assert holding(b.settings.home, KEPT)
    with a.sessions.begin() as s:
        s.execute(sa.text("UPDATE conversations SET updated_at = :t"), {"t": "2000-01-01 00:00:00+00:00"})
    assert cli_on(a, "conversations", "purge", "--older-than", "30") == 0
    assert b.refresh_models(wait=True) == []
    assert holding(b.settings.home, KEPT) == []


def test_erasing_an_unknown_conversation_stays_an_error_and_records_nothing(hosts, capsys):
    a, _b = hosts
    world(a)
    assert cli_on(a, "conversations", "erase", "no-such-id") == 2
    assert "no conversation 'no-such-id'" in capsys.readouterr().err
    with a.sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Erasure)) == 0


def test_an_export_recorded_before_hosts_is_claimed_by_the_host_that_holds_it(hosts):
    """Exports written before revision 0006 have no host: B takes over those whose file it
    holds (same sha256) at its next start, and applies every erasure to them."""
    a, b = hosts
    ids = world(a)
    path = b.settings.home / "old.csv"
    with b.sessions.begin() as s:
        exports.export_training_set(s, what="sentiment", path=path)  # no host, as before
    away = path.rename(path.with_name("away"))  # both homes are on this machine: hide it from A
    with a.sessions.begin() as s:  # A does not hold the file: it leaves the record alone
        assert erasure.erase_conversation(s, conversation_id=ids["erased"], host=a.host_id)
    away.rename(path)
    [record] = exports_of(a)
    assert record.host is None and ids["erased"] in record.conversation_ids
    assert holding(b.settings.home) == ["old.csv"]

    assert b.apply_erasures(claim=True) == 1
    assert holding(b.settings.home) == []
    [record] = exports_of(b)
    assert record.host == b.host_id and record.conversation_ids == [ids["kept"]]


def test_an_erasure_committed_late_is_still_applied(hosts, tmp_path):
    """PostgreSQL hands out ids before commit: an erasure with a lower id can appear after
    a higher one was applied. The missing id is looked for again."""
    a, b = hosts
    ids = world(a)
    export_on(b, "b")
    with a.sessions.begin() as s:
        s.add(Erasure(id=2, conversation_sha256=erasure.conversation_sha256("someone-else")))
    assert b.apply_erasures() == 0
    assert json.loads((b.settings.home / "host.json").read_text())["gaps"].keys() == {"1"}
    with a.sessions.begin() as s:  # the slower transaction commits id 1 now
        s.add(Erasure(id=1, conversation_sha256=erasure.conversation_sha256(ids["erased"])))
    assert b.apply_erasures() == 2
    assert holding(b.settings.home) == []
    assert json.loads((b.settings.home / "host.json").read_text())["gaps"] == {}
