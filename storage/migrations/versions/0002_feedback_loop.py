"""feedback loop: redaction originals, corrected intent, model version routes, exports, retrain runs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 19:05:21.833500

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Exports and retrain runs (the feedback loop), redaction originals, corrected intents,
    and per-route model versions (one active version per task *and route*)."""
    op.create_table('exports',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('what', sa.String(length=16), nullable=False),
    sa.Column('route', sa.String(length=16), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('conversation_ids', sa.JSON(), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('retrain_run_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("what IN ('sentiment', 'intent', 'chat')", name=op.f('ck_exports_what')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exports'))
    )
    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exports_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_exports_retrain_run_id'), ['retrain_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_exports_what'), ['what'], unique=False)

    op.create_table('retrain_runs',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('task', sa.String(length=16), nullable=False),
    sa.Column('route', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('active_version_id', sa.String(length=64), nullable=True),
    sa.Column('candidate_version_id', sa.String(length=64), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('running', 'promoted', 'rejected', 'skipped', 'failed', 'killed')", name=op.f('ck_retrain_runs_status')),
    sa.CheckConstraint("task IN ('sentiment', 'intent', 'chat')", name=op.f('ck_retrain_runs_task')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retrain_runs'))
    )
    with op.batch_alter_table('retrain_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_retrain_runs_started_at'), ['started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_retrain_runs_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_retrain_runs_task'), ['task'], unique=False)

    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.add_column(sa.Column('corrected_intent', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('original', sa.JSON(), nullable=True))

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('text_original', sa.Text(), nullable=True))

    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('route', sa.String(length=16), server_default='default', nullable=False))
        batch_op.drop_index('uq_model_versions_one_active_per_task', sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
        batch_op.create_index('uq_model_versions_one_active_per_route', ['task', 'route'], unique=True, sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_index('uq_model_versions_one_active_per_route', sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
        batch_op.create_index('uq_model_versions_one_active_per_task', ['task'], unique=True, sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
        batch_op.drop_column('route')

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('text_original')

    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_column('original')
        batch_op.drop_column('corrected_intent')

    with op.batch_alter_table('retrain_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_retrain_runs_task'))
        batch_op.drop_index(batch_op.f('ix_retrain_runs_status'))
        batch_op.drop_index(batch_op.f('ix_retrain_runs_started_at'))

    op.drop_table('retrain_runs')
    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exports_what'))
        batch_op.drop_index(batch_op.f('ix_exports_retrain_run_id'))
        batch_op.drop_index(batch_op.f('ix_exports_created_at'))

    op.drop_table('exports')
