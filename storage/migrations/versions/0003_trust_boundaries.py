"""trust boundaries: key scopes, conversation owners and /chat tokens, feedback review

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 08:48:01.719860

API keys get three scopes (customer, agent, admin): the old "normal" keys become
"agent" keys, which keep what they could do except erasing conversations (admin).
Conversations record who created them, and /chat conversations the hash of the secret
in their link. Feedback records who sent it and whether it may teach the models: rows
with corrections stored before this revision wait for an agent's review ("pending"),
bare ratings are signals. Exports record who confirmed each row.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('access_token_hash', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_conversations_owner'), ['owner'], unique=False)

    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('confirmed_by', sa.JSON(), nullable=True))

    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.add_column(sa.Column('submitted_by', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('review_status', sa.String(length=16), server_default='signal', nullable=False))
        batch_op.add_column(sa.Column('confirmed_by', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_feedback_review_status'), ['review_status'], unique=False)
        batch_op.create_check_constraint(
            'review_status', "review_status IN ('signal', 'pending', 'confirmed', 'rejected')")
    op.execute("UPDATE feedback SET review_status = 'pending' WHERE corrected_reply IS NOT NULL "
               "OR corrected_sentiment IS NOT NULL OR corrected_intent IS NOT NULL")

    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_api_keys_scope'), type_='check')
    op.execute("UPDATE api_keys SET scope = 'agent' WHERE scope = 'normal'")
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_check_constraint('scope', "scope IN ('customer', 'agent', 'admin')")


def downgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_api_keys_scope'), type_='check')
    op.execute("UPDATE api_keys SET scope = 'normal' WHERE scope IN ('customer', 'agent')")
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_check_constraint('scope', "scope IN ('normal', 'admin')")

    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_feedback_review_status'), type_='check')
        batch_op.drop_index(batch_op.f('ix_feedback_review_status'))
        batch_op.drop_column('reviewed_at')
        batch_op.drop_column('confirmed_by')
        batch_op.drop_column('review_status')
        batch_op.drop_column('submitted_by')

    with op.batch_alter_table('exports', schema=None) as batch_op:
        batch_op.drop_column('confirmed_by')

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conversations_owner'))
        batch_op.drop_column('access_token_hash')
        batch_op.drop_column('owner')
