"""The database schema as SQLAlchemy 2 typed declarative models.

Portable between SQLite and PostgreSQL: string ids, `sa.JSON` for documents, small
vocabularies as strings guarded by CHECK constraints, UTC timestamps that come back
timezone-aware on both databases. Every constraint and index has a name (see
`NAMING_CONVENTION`) so later Alembic revisions can drop or alter them, also in SQLite's
batch mode.

The schema changes only through revisions in `storage/migrations/versions/`; the app
never calls `create_all`. After editing this file, run
`alembic -c storage/alembic.ini revision --autogenerate --rev-id 000N -m "..."`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The small vocabularies of the domain (API.md). Repositories validate against them
# before the CHECK constraints would.
CONVERSATION_STATUSES = ("open", "escalated", "closed")
MESSAGE_ROLES = ("customer", "bot", "agent")
FEEDBACK_RATINGS = ("up", "down")
TASKS = ("sentiment", "intent", "chat")
CLASSIFIER_TASKS = ("sentiment", "intent")
MODEL_VERSION_STATUSES = ("candidate", "active", "retired", "rejected")
FINETUNE_KINDS = ("classifier", "chat")
FINETUNE_STATUSES = ("running", "succeeded", "failed", "killed")
# customer: services facing customers (their own conversations, feedback as a signal);
# agent: the support team's tools (every conversation, agent replies, review); admin: all.
API_KEY_SCOPES = ("customer", "agent", "admin")
# What a feedback row may teach the models: `confirmed` rows enter training exports;
# customers' corrections wait `pending` until an agent confirms (or rejects) them; a
# customer's bare rating is a `signal` (dashboards), never training data.
FEEDBACK_REVIEW_STATUSES = ("signal", "pending", "confirmed", "rejected")
# A model version serves one route of its task: "default", or a language ("zh") that
# the task routes to its own model (sentiment: Chinese texts go to the Chinese model).
DEFAULT_ROUTE = "default"
EXPORT_KINDS = ("sentiment", "intent", "chat")
RETRAIN_STATUSES = ("running", "promoted", "rejected", "skipped", "failed", "killed")


def check_choice(value: str, allowed: tuple[str, ...], what: str) -> None:
    """Repositories validate the small vocabularies before the CHECK constraints would."""
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


def new_id() -> str:
    """A fresh random id: 32 lowercase hex characters (uuid4)."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware (UTC).

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so the value is stored
    as naive UTC text and the zone is put back on the way out. Naive datetimes passed in
    are taken to be UTC already. In migrations this renders as
    `sa.DateTime(timezone=True)`, which is the same DDL.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "sqlite":
            value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# none_as_null: a Python None is stored as SQL NULL, not as the JSON text 'null'.
JSONType = sa.JSON(none_as_null=True)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
    }


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        sa.CheckConstraint(_one_of("status", CONVERSATION_STATUSES), name="status"),
        sa.Index(None, "created_at", "id"),  # keyset pagination
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True, default=new_id)
    status: Mapped[str] = mapped_column(sa.String(16), default="open", index=True)
    channel: Mapped[str | None] = mapped_column(sa.String(64))
    customer_ref: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    # `metadata` is reserved by SQLAlchemy's declarative base; the column keeps the name.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    escalation_reason: Mapped[str | None] = mapped_column(sa.Text)
    # Who created it: "key:<api key id>", "keyfile:<name>", "chat" (the open /chat page),
    # "ui:<user>", "open" (no keys configured) or "operator" (CLI). Customer-scope
    # callers see only their own.
    owner: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    # sha256 of the secret in a /chat conversation's link; NULL for other conversations.
    access_token_hash: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation",
        order_by="(Message.created_at, Message.id)",
        cascade="all, delete-orphan",
        passive_deletes=True,  # the database's ON DELETE CASCADE does the work
    )

    def __repr__(self) -> str:
        return f"Conversation(id={self.id!r}, status={self.status!r})"


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        sa.CheckConstraint(_one_of("role", MESSAGE_ROLES), name="role"),
        # Also serves lookups by conversation_id alone (leftmost column).
        sa.Index(None, "conversation_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(
        sa.ForeignKey("conversations.id", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(sa.String(16))
    text: Mapped[str] = mapped_column(sa.Text)  # PII redacted (bot.redaction)
    # The text before redaction, kept only when the operator opts in
    # (SUPPORTBOT_PII_KEEP_ORIGINAL); NULL otherwise.
    text_original: Mapped[str | None] = mapped_column(sa.Text)
    language: Mapped[str | None] = mapped_column(sa.String(16))
    sentiment_label: Mapped[str | None] = mapped_column(sa.String(64))
    sentiment_score: Mapped[float | None]
    sentiment_scores: Mapped[dict[str, Any] | None]
    intent_label: Mapped[str | None] = mapped_column(sa.String(64))
    intent_score: Mapped[float | None]
    # [{"id", "title", "score"}, ...]: knowledge-base articles the reply drew on.
    sources: Mapped[list[Any]] = mapped_column(default=list)
    model_version: Mapped[str | None] = mapped_column(sa.String(255))
    latency_ms: Mapped[float | None]
    agent: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")
    feedback: Mapped[list[Feedback]] = relationship(
        back_populates="message", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"Message(id={self.id!r}, role={self.role!r})"


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        sa.CheckConstraint(_one_of("rating", FEEDBACK_RATINGS), name="rating"),
        sa.CheckConstraint(_one_of("review_status", FEEDBACK_REVIEW_STATUSES), name="review_status"),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True, default=new_id)
    message_id: Mapped[str] = mapped_column(
        sa.ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    rating: Mapped[str] = mapped_column(sa.String(8))
    comment: Mapped[str | None] = mapped_column(sa.Text)
    corrected_reply: Mapped[str | None] = mapped_column(sa.Text)
    corrected_sentiment: Mapped[str | None] = mapped_column(sa.String(64))
    corrected_intent: Mapped[str | None] = mapped_column(sa.String(64))
    # comment / corrected_reply before PII redaction, only when the operator opts in.
    original: Mapped[dict[str, Any] | None]
    # sha256 of the whole payload: a replay of the same feedback is rejected.
    fingerprint: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # Who sent it ("chat", "key:<id>", "ui:<user>", "operator", ...) and whether it may
    # teach the models (FEEDBACK_REVIEW_STATUSES); confirmed_by: who vouched for it.
    submitted_by: Mapped[str | None] = mapped_column(sa.String(255))
    review_status: Mapped[str] = mapped_column(sa.String(16), default="signal", server_default="signal",
                                               index=True)
    confirmed_by: Mapped[str | None] = mapped_column(sa.String(255))
    reviewed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    message: Mapped[Message] = relationship(back_populates="feedback")


class FinetuneRun(Base):
    __tablename__ = "finetune_runs"
    __table_args__ = (
        sa.CheckConstraint(_one_of("task", TASKS), name="task"),
        sa.CheckConstraint(_one_of("kind", FINETUNE_KINDS), name="kind"),
        sa.CheckConstraint(_one_of("status", FINETUNE_STATUSES), name="status"),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name="progress"),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True, default=new_id)
    task: Mapped[str] = mapped_column(sa.String(16), index=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16), default="running", index=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What the run was trained on: usually a list of files,
    # [{"path", "sha256", "rows", ...}, ...]; any JSON document is accepted.
    data: Mapped[Any] = mapped_column(JSONType, default=list)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    progress: Mapped[float] = mapped_column(default=0.0)  # 0..1
    output_dir: Mapped[str | None] = mapped_column(sa.Text)
    error: Mapped[str | None] = mapped_column(sa.Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        sa.UniqueConstraint("task", "name"),
        sa.CheckConstraint(_one_of("task", TASKS), name="task"),
        sa.CheckConstraint(_one_of("status", MODEL_VERSION_STATUSES), name="status"),
        # At most one active version per task and route, enforced by the database too.
        sa.Index(
            "uq_model_versions_one_active_per_route",
            "task",
            "route",
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True, default=new_id)
    task: Mapped[str] = mapped_column(sa.String(16))  # indexed by uq (task, name)
    name: Mapped[str] = mapped_column(sa.String(255))
    route: Mapped[str] = mapped_column(sa.String(16), default=DEFAULT_ROUTE, server_default=DEFAULT_ROUTE)
    base_model: Mapped[str | None] = mapped_column(sa.String(255))
    path: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default="candidate", index=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    finetune_run_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("finetune_runs.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None]

    finetune_run: Mapped[FinetuneRun | None] = relationship()

    def __repr__(self) -> str:
        return f"ModelVersion(task={self.task!r}, name={self.name!r}, status={self.status!r})"


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (sa.CheckConstraint(_one_of("scope", API_KEY_SCOPES), name="scope"),)

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)  # sha256 hex
    prefix: Mapped[str] = mapped_column(sa.String(16), index=True)  # for display and lookup
    scope: Mapped[str] = mapped_column(sa.String(16), default="normal")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def __repr__(self) -> str:  # never shows the hash
        return f"ApiKey(name={self.name!r}, prefix={self.prefix!r}, scope={self.scope!r})"


class KbArticle(Base):
    __tablename__ = "kb_articles"

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)  # from the source file
    title: Mapped[str] = mapped_column(sa.Text)
    language: Mapped[str] = mapped_column(sa.String(16), default="en", index=True)
    body: Mapped[str] = mapped_column(sa.Text)
    tags: Mapped[list[Any]] = mapped_column(default=list)  # intent labels
    embedding: Mapped[bytes | None] = mapped_column(sa.LargeBinary)  # float32 vector bytes
    # The encoder that made `embedding`: an index built with another one embeds again.
    embedding_model: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Prediction(Base):
    """One classifier prediction served by the API. No raw text is kept."""

    __tablename__ = "predictions"
    __table_args__ = (
        sa.CheckConstraint(_one_of("task", CLASSIFIER_TASKS), name="task"),
        sa.Index(None, "task", "created_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True, default=new_id)
    task: Mapped[str] = mapped_column(sa.String(16))
    model_version: Mapped[str] = mapped_column(sa.String(255))
    label: Mapped[str] = mapped_column(sa.String(64))
    score: Mapped[float]
    language: Mapped[str | None] = mapped_column(sa.String(16))
    text_chars: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Export(Base):
    """A training set written from storage (`supportbot db export`, `supportbot retrain`).

    Records what went out: the file, its row count and sha256, and which conversations
    it holds, so erasing a conversation can rewrite every export that still exists.
    `until` is the newest source row included: the next run exports what came after.
    """

    __tablename__ = "exports"
    __table_args__ = (sa.CheckConstraint(_one_of("what", EXPORT_KINDS), name="what"),)

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True, default=new_id)
    what: Mapped[str] = mapped_column(sa.String(16), index=True)
    route: Mapped[str] = mapped_column(sa.String(16), default=DEFAULT_ROUTE)
    path: Mapped[str] = mapped_column(sa.Text)
    rows: Mapped[int]
    sha256: Mapped[str] = mapped_column(sa.String(64))
    conversation_ids: Mapped[list[Any]] = mapped_column(default=list)
    # Who confirmed each row (parallel to conversation_ids): an agent, an admin, "operator".
    confirmed_by: Mapped[list[Any] | None] = mapped_column(default=list)
    since: Mapped[datetime | None]
    until: Mapped[datetime | None]
    retrain_run_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    # The host whose home holds the file (storage.erasure.host_id); None: written before
    # revision 0006, claimed by the host where the file is found with its recorded sha256.
    host: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Erasure(Base):
    """A conversation erased (storage.erasure), written in the erasure's transaction, so
    every host can remove its rows from the export files in its own home. Keeps the
    sha256 of the conversation id, not the id: the table outlives the erasure, and alone
    it should not list which conversations existed (ids are random uuid4 hex, so the
    hash cannot be reversed by trying ids). Ids only grow: hosts remember the last one
    applied."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    conversation_sha256: Mapped[str] = mapped_column(sa.String(64))
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)


class RetrainRun(Base):
    """One task's turn in the periodic job: what was exported, trained, measured, decided."""

    __tablename__ = "retrain_runs"
    __table_args__ = (
        sa.CheckConstraint(_one_of("task", TASKS), name="task"),
        sa.CheckConstraint(_one_of("status", RETRAIN_STATUSES), name="status"),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True, default=new_id)
    task: Mapped[str] = mapped_column(sa.String(16), index=True)
    route: Mapped[str] = mapped_column(sa.String(16), default=DEFAULT_ROUTE)
    status: Mapped[str] = mapped_column(sa.String(16), default="running", index=True)
    reason: Mapped[str | None] = mapped_column(sa.Text)  # why promoted / rejected / skipped
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)  # data sizes, metrics, times
    active_version_id: Mapped[str | None] = mapped_column(sa.String(64))
    candidate_version_id: Mapped[str | None] = mapped_column(sa.String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]


class RateLimitBucket(Base):
    """One caller's token bucket, shared by every worker and host (bot.ratelimit).

    `updated_at` is the database's clock in seconds since the epoch when `tokens` was last
    computed; the bucket refills from there at the limiter's rate, up to its burst."""

    __tablename__ = "rate_limit_buckets"

    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)  # "api:key:<sha256>", "chat:<address>", ...
    tokens: Mapped[float] = mapped_column(sa.Float)
    updated_at: Mapped[float] = mapped_column(sa.Float, index=True)


class Lease(Base):
    """A named lock across processes and hosts ("retrain"): held by one `holder` until
    `expires_at`; the holder renews it while it works, and a lease left by a dead process
    can be taken over once it has expired."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(sa.String(255))  # host:pid:random
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


UI_ROLES = ("agent", "admin")


class UiUser(Base):
    """A login of the staff UI (`supportbot users add NAME --role agent|admin`); only a
    salted PBKDF2 hash of the password is kept."""

    __tablename__ = "ui_users"
    __table_args__ = (sa.CheckConstraint(_one_of("role", UI_ROLES), name="role"),)

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(16))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
