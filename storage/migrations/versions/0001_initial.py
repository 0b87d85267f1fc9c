"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 15:16:48.087062

Conversations, messages, feedback, model versions, fine-tune runs, API keys,
knowledge-base articles and the prediction log.

Generated with `alembic revision --autogenerate --rev-id 0001` against an empty SQLite
database, then tidied: plain `op.create_index` instead of batch blocks (nothing to
alter on new tables) and a downgrade that drops the tables (their indexes go with them).
Portable: strings with CHECK constraints instead of native enums, `sa.JSON`,
`DateTime(timezone=True)`, named constraints (storage.models.NAMING_CONVENTION).
Never edit this file once merged; append 0002_... instead.
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("scope IN ('normal', 'admin')", name=op.f("ck_api_keys_scope")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
        sa.UniqueConstraint("name", name=op.f("uq_api_keys_name")),
    )
    op.create_index(op.f("ix_api_keys_prefix"), "api_keys", ["prefix"])

    op.create_table(
        "conversations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("customer_ref", sa.String(length=255), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("escalation_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'escalated', 'closed')", name=op.f("ck_conversations_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
    )
    op.create_index(op.f("ix_conversations_created_at_id"), "conversations", ["created_at", "id"])
    op.create_index(op.f("ix_conversations_customer_ref"), "conversations", ["customer_ref"])
    op.create_index(op.f("ix_conversations_status"), "conversations", ["status"])
    op.create_index(op.f("ix_conversations_updated_at"), "conversations", ["updated_at"])

    op.create_table(
        "finetune_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("task", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("progress", sa.Double(), nullable=False),
        sa.Column("output_dir", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('classifier', 'chat')", name=op.f("ck_finetune_runs_kind")),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'killed')",
            name=op.f("ck_finetune_runs_status"),
        ),
        sa.CheckConstraint(
            "task IN ('sentiment', 'intent', 'chat')", name=op.f("ck_finetune_runs_task")
        ),
        sa.CheckConstraint(
            "progress >= 0 AND progress <= 1", name=op.f("ck_finetune_runs_progress")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finetune_runs")),
    )
    op.create_index(op.f("ix_finetune_runs_started_at"), "finetune_runs", ["started_at"])
    op.create_index(op.f("ix_finetune_runs_status"), "finetune_runs", ["status"])
    op.create_index(op.f("ix_finetune_runs_task"), "finetune_runs", ["task"])

    op.create_table(
        "kb_articles",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_articles")),
    )
    op.create_index(op.f("ix_kb_articles_language"), "kb_articles", ["language"])

    op.create_table(
        "predictions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("task", sa.String(length=16), nullable=False),
        sa.Column("model_version", sa.String(length=255), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("text_chars", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("task IN ('sentiment', 'intent')", name=op.f("ck_predictions_task")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
    )
    op.create_index(op.f("ix_predictions_created_at"), "predictions", ["created_at"])
    op.create_index(
        op.f("ix_predictions_task_created_at"), "predictions", ["task", "created_at"]
    )

    op.create_table(
        "messages",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("sentiment_label", sa.String(length=64), nullable=True),
        sa.Column("sentiment_score", sa.Double(), nullable=True),
        sa.Column("sentiment_scores", sa.JSON(), nullable=True),
        sa.Column("intent_label", sa.String(length=64), nullable=True),
        sa.Column("intent_score", sa.Double(), nullable=True),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("model_version", sa.String(length=255), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("agent", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('customer', 'bot', 'agent')", name=op.f("ck_messages_role")
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    op.create_index(
        op.f("ix_messages_conversation_id_created_at"),
        "messages",
        ["conversation_id", "created_at"],
    )
    op.create_index(op.f("ix_messages_created_at"), "messages", ["created_at"])

    op.create_table(
        "model_versions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("task", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("base_model", sa.String(length=255), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("finetune_run_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('candidate', 'active', 'retired', 'rejected')",
            name=op.f("ck_model_versions_status"),
        ),
        sa.CheckConstraint(
            "task IN ('sentiment', 'intent', 'chat')", name=op.f("ck_model_versions_task")
        ),
        sa.ForeignKeyConstraint(
            ["finetune_run_id"],
            ["finetune_runs.id"],
            name=op.f("fk_model_versions_finetune_run_id_finetune_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("task", "name", name=op.f("uq_model_versions_task_name")),
    )
    op.create_index(
        op.f("ix_model_versions_finetune_run_id"), "model_versions", ["finetune_run_id"]
    )
    op.create_index(op.f("ix_model_versions_status"), "model_versions", ["status"])
    # At most one active version per task (a partial unique index; both databases have them).
    op.create_index(
        "uq_model_versions_one_active_per_task",
        "model_versions",
        ["task"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )

    op.create_table(
        "feedback",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("rating", sa.String(length=8), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("corrected_reply", sa.Text(), nullable=True),
        sa.Column("corrected_sentiment", sa.String(length=64), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("rating IN ('up', 'down')", name=op.f("ck_feedback_rating")),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_feedback_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_feedback_fingerprint")),
    )
    op.create_index(op.f("ix_feedback_created_at"), "feedback", ["created_at"])
    op.create_index(op.f("ix_feedback_message_id"), "feedback", ["message_id"])


def downgrade() -> None:
    # Children first; each table's indexes are dropped with it.
    for table in (
        "feedback",
        "model_versions",
        "messages",
        "predictions",
        "kb_articles",
        "finetune_runs",
        "conversations",
        "api_keys",
    ):
        op.drop_table(table)
