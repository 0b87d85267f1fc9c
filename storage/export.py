"""Training sets from storage: what customers and agents taught the bot, as files.

    sentiment / intent   `text,label` CSV: the corrected labels of customer turns (and,
                         if asked, confident predictions a 👍 confirmed)
    chat                 chat JSONL (OpenAI fine-tuning format): up-voted bot replies,
                         corrected replies, and human agents' replies, each with the
                         conversation before it (earlier assistant turns carry
                         "weight": 0: shown to the model, not trained on)

Only what staff vouched for is exported: feedback whose review status is `confirmed` (sent
by an agent, admin or the operator, or a customer's correction an agent confirmed) and
agents' own replies; each export records who confirmed each row (`Export.confirmed_by`).
Texts are exported as stored, i.e. already PII-redacted (bot.redaction). Rows are
deduplicated (the newest correction of a text wins). Every file written is recorded in
the `exports` table with its row count, sha256, the conversation each row came from
and the host whose home holds it, so erasing a conversation (storage.erasure) can
rewrite every export still on disk, each host its own. Erased conversations are gone
from the database, so no later export has them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Collection, Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from core.errors import ConflictError
from storage.models import DEFAULT_ROUTE, EXPORT_KINDS, Export, Feedback, Message, check_choice, utcnow

CONTEXT_MESSAGES = 8  # earlier messages kept before an exported chat reply
ROLE = {"customer": "user", "bot": "assistant", "agent": "assistant"}


class ExportEdited(ConflictError):
    """An export file no longer matches its record (edited by hand): erasing from it could
    remove the wrong rows, so nothing is erased (the API answers 409, the CLI exits 2)."""


@dataclass(frozen=True)
class ExportRow:
    conversation_id: str
    data: dict[str, Any]  # {"text", "label"} or {"messages": [...]}
    at: datetime  # when the source (feedback, agent reply) was created
    confirmed_by: str | None = None  # who vouched for it: an agent, an admin, "operator"

    @property
    def key(self) -> str:
        if "messages" in self.data:
            return json.dumps(self.data["messages"], ensure_ascii=False, sort_keys=True)
        return self.data["text"]


def _in_route(language: str | None, route: str, route_languages: dict[str, Collection[str]]) -> bool:
    """Route "default" takes every language no other route claims."""
    if route == DEFAULT_ROUTE:
        return not any(language in langs for r, langs in route_languages.items() if r != DEFAULT_ROUTE)
    return language in route_languages.get(route, set())


def _customer_turn(session: Session, message: Message) -> Message | None:
    """The customer turn a message is about: itself, or the one a bot reply answered."""
    if message.role == "customer":
        return message
    return session.scalar(
        sa.select(Message)
        .where(Message.conversation_id == message.conversation_id, Message.role == "customer",
               Message.created_at < message.created_at)
        .order_by(Message.created_at.desc()).limit(1))


def collect_label_rows(session: Session, *, what: str, since: datetime | None = None, route: str = DEFAULT_ROUTE,
                       route_languages: dict[str, Collection[str]] | None = None,
                       confirmed_min_score: float | None = None) -> list[ExportRow]:
    """Corrected labels (sentiment or intent) of customer turns since `since`."""
    column = Feedback.corrected_sentiment if what == "sentiment" else Feedback.corrected_intent
    route_languages = route_languages or {}
    query = (sa.select(Feedback).where(column.is_not(None), Feedback.review_status == "confirmed")
             .order_by(Feedback.created_at, Feedback.id))
    if since is not None:
        query = query.where(Feedback.created_at > since)
    rows = []
    for fb in session.scalars(query):
        turn = _customer_turn(session, fb.message)
        if turn is not None and _in_route(turn.language, route, route_languages):
            label = fb.corrected_sentiment if what == "sentiment" else fb.corrected_intent
            rows.append(ExportRow(turn.conversation_id, {"text": turn.text, "label": label}, fb.created_at,
                                  fb.confirmed_by))
    if confirmed_min_score is not None and what == "sentiment":
        rows = _confirmed_predictions(session, since, route, route_languages, confirmed_min_score) + rows
    return rows


def _confirmed_predictions(session, since, route, route_languages, min_score) -> list[ExportRow]:
    """Customer turns predicted with score >= min_score whose bot reply got a 👍 and no
    sentiment correction: the prediction counts as confirmed."""
    reply = aliased(Message)
    query = (sa.select(Feedback).join(reply, Feedback.message_id == reply.id)
             .where(reply.role == "bot", Feedback.rating == "up", Feedback.corrected_sentiment.is_(None),
                    Feedback.review_status == "confirmed")
             .order_by(Feedback.created_at, Feedback.id))
    if since is not None:
        query = query.where(Feedback.created_at > since)
    rows = []
    for fb in session.scalars(query):
        turn = _customer_turn(session, fb.message)
        if (turn is not None and turn.sentiment_label and (turn.sentiment_score or 0) >= min_score
                and _in_route(turn.language, route, route_languages)):
            rows.append(ExportRow(turn.conversation_id, {"text": turn.text, "label": turn.sentiment_label},
                                  fb.created_at, fb.confirmed_by))
    return rows


def _context(session: Session, reply: Message) -> list[dict]:
    earlier = list(reversed(list(session.scalars(
        sa.select(Message).where(Message.conversation_id == reply.conversation_id,
                                 Message.created_at < reply.created_at)
        .order_by(Message.created_at.desc()).limit(CONTEXT_MESSAGES)))))
    messages = [{"role": ROLE[m.role], "content": m.text, **({"weight": 0} if m.role != "customer" else {})}
                for m in earlier]
    while messages and messages[0]["role"] != "user":  # a conversation starts with the customer
        messages.pop(0)
    return messages


def collect_chat_rows(session: Session, *, since: datetime | None = None) -> list[ExportRow]:
    """Up-voted bot replies, corrected replies and agent replies since `since`. A reply
    someone corrected is exported once, as corrected (the newest correction), even if
    it was also up-voted."""
    rows = []
    query = sa.select(Feedback).join(Message, Feedback.message_id == Message.id).where(
        Message.role == "bot", sa.or_(Feedback.rating == "up", Feedback.corrected_reply.is_not(None)),
        Feedback.review_status == "confirmed")
    if since is not None:
        query = query.where(Feedback.created_at > since)
    chosen: dict[str, Feedback] = {}  # bot message id -> the feedback that says what the reply should be
    for fb in session.scalars(query.order_by(Feedback.created_at, Feedback.id)):
        kept = chosen.get(fb.message_id)
        if kept is None or fb.corrected_reply is not None or kept.corrected_reply is None:
            chosen[fb.message_id] = fb
    for fb in chosen.values():
        context = _context(session, fb.message)
        if context:
            text = fb.corrected_reply or fb.message.text
            rows.append(ExportRow(fb.message.conversation_id,
                                  {"messages": context + [{"role": "assistant", "content": text}]}, fb.created_at,
                                  fb.confirmed_by))
    query = sa.select(Message).where(Message.role == "agent")
    if since is not None:
        query = query.where(Message.created_at > since)
    for m in session.scalars(query.order_by(Message.created_at, Message.id)):
        context = _context(session, m)
        if context:
            rows.append(ExportRow(m.conversation_id,
                                  {"messages": context + [{"role": "assistant", "content": m.text}]}, m.created_at,
                                  f"agent:{m.agent}"))
    return sorted(rows, key=lambda r: r.at)


def collect_rows(session: Session, *, what: str, since: datetime | None = None, route: str = DEFAULT_ROUTE,
                 route_languages: dict[str, Collection[str]] | None = None,
                 confirmed_min_score: float | None = None) -> list[ExportRow]:
    """What storage holds for one training task since `since`, deduplicated (the newest
    row for a text or a conversation wins), oldest first."""
    check_choice(what, EXPORT_KINDS, "what")
    if what == "chat":
        rows = collect_chat_rows(session, since=since)
    else:
        rows = collect_label_rows(session, what=what, since=since, route=route, route_languages=route_languages,
                                  confirmed_min_score=confirmed_min_score)
    newest: dict[str, ExportRow] = {}
    for row in rows:  # oldest first: later rows replace earlier ones
        newest.pop(row.key, None)
        newest[row.key] = row
    return sorted(newest.values(), key=lambda r: r.at)


# ---- files ------------------------------------------------------------------------------

def render(what: str, rows: Iterable[dict]) -> bytes:
    if what == "chat":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    from storage.csv_cells import escape_cell

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    # QUOTE_MINIMAL quotes only the line terminator's characters ("\n"): a field with a
    # bare "\r" must be quoted too, or it splits its row when the file is read back.
    quoted = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["text", "label"])
    for r in rows:
        # "=HYPERLINK(...)", "+1 555", "@SUM(A1)": quoted so a spreadsheet shows them as text
        cells = [escape_cell(r["text"]), escape_cell(r["label"])]
        (quoted if "\r" in cells[0] + cells[1] else writer).writerow(cells)
    return buffer.getvalue().encode()


def parse(what: str, content: bytes) -> list[dict]:
    text = content.decode()
    if what == "chat":
        # split on "\n" only: str.splitlines() also splits inside strings at U+2028, U+0085, ...
        return [json.loads(line) for line in text.split("\n") if line.strip()]
    from storage.csv_cells import unescape_cell

    return [{"text": unescape_cell(r["text"]), "label": unescape_cell(r["label"])}
            for r in csv.DictReader(io.StringIO(text))]


def write_atomic(path: Path, content: bytes) -> None:
    """Write `content` to `path` by a temporary file and a rename. The file is created
    readable and writable by its owner only (0600, whatever the umask): exports hold
    customer text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with open(fd, "wb") as fh:
        if hasattr(os, "fchmod"):
            os.fchmod(fh.fileno(), 0o600)  # a temporary file left by a crash keeps its mode
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_export(session: Session, *, what: str, rows: list[ExportRow], path: str | Path,
                 route: str = DEFAULT_ROUTE, since: datetime | None = None,
                 retrain_run_id: str | None = None, host: str | None = None) -> Export:
    """Write rows to `path` (atomically) and record the export (`host`: the writing
    host's id, storage.erasure.host_id; its apply_erasures keeps the file erased)."""
    path = Path(path)
    content = render(what, [r.data for r in rows])
    write_atomic(path, content)
    record = Export(what=what, route=route, path=str(path.resolve()), rows=len(rows),
                    sha256=hashlib.sha256(content).hexdigest(),
                    conversation_ids=[r.conversation_id for r in rows],
                    confirmed_by=[r.confirmed_by for r in rows], since=since,
                    until=max((r.at for r in rows), default=since), retrain_run_id=retrain_run_id,
                    host=host)
    session.add(record)
    session.flush()
    return record


def export_training_set(session: Session, *, what: str, path: str | Path, since: datetime | None = None,
                        route: str = DEFAULT_ROUTE, route_languages: dict[str, Collection[str]] | None = None,
                        confirmed_min_score: float | None = None, host: str | None = None) -> Export:
    """`supportbot db export`: collect and write one training set."""
    rows = collect_rows(session, what=what, since=since, route=route, route_languages=route_languages,
                        confirmed_min_score=confirmed_min_score)
    return write_export(session, what=what, rows=rows, path=path, route=route, since=since, host=host)


def list_exports(session: Session, *, what: str | None = None) -> list[Export]:
    query = sa.select(Export).order_by(Export.created_at.desc())
    if what is not None:
        query = query.where(Export.what == what)
    return list(session.scalars(query))


def scrub_exports(session: Session, conversation_ids: set[str], *, host: str | None = None) -> int:
    """Rewrite every export of this host (`host`; None: those recorded without one) that
    holds rows of these conversations without them (atomically; row count, hash and
    conversation list updated). Returns how many rows were removed. A file that is gone
    already is only re-recorded. Other hosts' files are theirs to rewrite
    (storage.erasure.apply_erasures): their paths mean nothing here."""
    removed = 0
    if not conversation_ids:
        return 0
    # Every file is read and checked before any is rewritten: a refused one leaves all as
    # they were (their records are rolled back with the caller's transaction).
    plans = []
    mine = Export.host.is_(None) if host is None else Export.host == host
    for record in session.scalars(sa.select(Export).where(mine)):
        owners = list(record.conversation_ids or [])
        keep = [i for i, c in enumerate(owners) if c not in conversation_ids]
        if len(keep) == len(owners):
            continue
        path = Path(record.path)
        content = None
        if path.is_file():
            data = parse(record.what, path.read_bytes())
            if len(data) != len(owners):
                raise ExportEdited(f"export {path} has {len(data)} rows but {len(owners)} recorded; "
                                   "it was edited by hand: delete it or restore it before erasing")
            content = render(record.what, [data[i] for i in keep])
        plans.append((record, path, owners, keep, content))
    for record, path, owners, keep, content in plans:
        if content is not None:
            write_atomic(path, content)
            record.sha256 = hashlib.sha256(content).hexdigest()
        removed += len(owners) - len(keep)
        record.conversation_ids = [owners[i] for i in keep]
        confirmed = list(record.confirmed_by or [])
        record.confirmed_by = [confirmed[i] for i in keep] if len(confirmed) == len(owners) else confirmed
        record.rows = len(keep)
        record.updated_at = utcnow()
    session.flush()
    return removed
