"""Erasing a customer's data everywhere: the conversation, its messages and feedback, and
its rows in every export file still on disk (storage.export), on every host.

Hosts share the database but each keeps its export files (`supportbot db export`, retrain
runs) in its own home. The erasing host rewrites its own files in the erasure's
transaction and records the erasure in `erasures` (the sha256 of the conversation id);
every host then applies the erasures it has not applied yet to its own files
(`apply_erasures`: at the start of every command and server, and with the model-versions
poll), remembering in `<home>/host.json` its host id and the last erasure it applied.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from storage.export import scrub_exports, write_atomic
from storage.models import Conversation, Erasure, Export
from storage.repositories import conversations as repo

STATE_FILE = "host.json"
# An erasure id above the last one applied but not visible yet (PostgreSQL hands out ids
# before commit, so a slower transaction can commit a lower id later) is looked for again
# for this long; then it is taken as rolled back.
GAP_WAIT_S = 600.0
MAX_GAPS = 1000


def conversation_sha256(conversation_id: str) -> str:
    return hashlib.sha256(conversation_id.encode()).hexdigest()


def _record(session: Session, conversation_ids: Iterable[str]) -> None:
    session.add_all(Erasure(conversation_sha256=conversation_sha256(c)) for c in conversation_ids)


def erase_conversation(session: Session, *, conversation_id: str, host: str | None = None) -> bool:
    """False if there is no such conversation. This host's export files (`host`: its
    host_id, and those recorded before hosts whose file is here; None: those recorded
    without a host) are rewritten first: if that fails, the transaction is rolled back by the caller and nothing is
    half-erased in the database. Other hosts' files: by their apply_erasures."""
    if repo.get_conversation(session, conversation_id=conversation_id) is None:
        return False
    if host is not None:
        _claim_exports(session, host)
    scrub_exports(session, {conversation_id}, host=host)
    _record(session, [conversation_id])
    return repo.delete_conversation(session, conversation_id=conversation_id)


def purge(session: Session, *, older_than: datetime, host: str | None = None) -> int:
    """Erase every conversation with no activity since `older_than`; returns how many."""
    ids = set(session.scalars(sa.select(Conversation.id).where(Conversation.updated_at < older_than)))
    if host is not None and ids:
        _claim_exports(session, host)
    scrub_exports(session, ids, host=host)
    _record(session, sorted(ids))
    for conversation_id in ids:
        repo.delete_conversation(session, conversation_id=conversation_id)
    return len(ids)


# ---- every host: its own files ---------------------------------------------------------

def read_state(home: Path) -> dict:
    """`<home>/host.json`: {"host": id, "through": last erasure id applied, "gaps":
    {id: first seen missing (epoch s)}}; created with a fresh host id if missing."""
    path = Path(home) / STATE_FILE
    if not path.exists():
        # Linked into place, never overwritten: two processes starting at once on a new
        # home must agree on one host id.
        fresh = path.with_name(f".{STATE_FILE}.new-{uuid.uuid4().hex}")
        write_atomic(fresh, json.dumps({"host": uuid.uuid4().hex, "through": 0, "gaps": {}}).encode())
        try:
            os.link(fresh, path)
        except FileExistsError:
            pass
        finally:
            fresh.unlink()
    return json.loads(path.read_text())


def host_id(home: Path) -> str:
    """This host's id (kept in its home): recorded on every export it writes."""
    return read_state(home)["host"]


def _claim_exports(session: Session, host: str) -> int:
    """Exports recorded before hosts were (revision 0006): this host's if the file is
    here with its recorded sha256."""
    claimed = 0
    for record in session.scalars(sa.select(Export).where(Export.host.is_(None))):
        path = Path(record.path)
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == record.sha256:
            record.host = host
            claimed += 1
    return claimed


def _next_state(state: dict, seen: set[int]) -> dict:
    through = state["through"]
    top = max(seen, default=through)
    now = time.time()
    gaps = {int(i): t for i, t in state["gaps"].items() if int(i) not in seen and now - t < GAP_WAIT_S}
    gaps.update({i: now for i in range(through + 1, top) if i not in seen})
    kept = sorted(gaps)[-MAX_GAPS:]
    return {**state, "through": max(through, top), "gaps": {str(i): gaps[i] for i in kept}}


def apply_erasures(sessions: sessionmaker, *, home: Path, claim: bool = False) -> int:
    """Remove from this host's export files the rows of conversations erased (on any
    host) since it last looked; returns how many rows were removed. `claim`: first take
    over this host's exports written before revision 0006 (reads those files), and check
    them against every erasure. Runs its own transaction and records what it applied in
    `<home>/host.json` after the commit, so a crash in between only repeats work (which
    finds nothing left to remove). Raises storage.export.ExportEdited like an erasure."""
    state = read_state(home)
    host = state["host"]
    with sessions.begin() as session:
        claimed = _claim_exports(session, host) if claim else 0
        query = sa.select(Erasure.id, Erasure.conversation_sha256)
        if not claimed:
            query = query.where(sa.or_(Erasure.id > state["through"],
                                       Erasure.id.in_([int(i) for i in state["gaps"]])))
        found = list(session.execute(query))
        hashes = {h for _, h in found}
        ids: set[str] = set()
        if hashes:
            for record in session.scalars(sa.select(Export).where(Export.host == host)):
                ids.update(c for c in record.conversation_ids or [] if conversation_sha256(c) in hashes)
        removed = scrub_exports(session, ids, host=host)
    new_state = _next_state(state, {i for i, _ in found})
    if new_state != state:
        write_atomic(Path(home) / STATE_FILE, json.dumps(new_state).encode())
    return removed
