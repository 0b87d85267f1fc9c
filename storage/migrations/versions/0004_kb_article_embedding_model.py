"""kb article embedding model: which encoder made each stored article vector

An index built with another encoder (say MiniLM -> multilingual-e5-small, both 384
dimensions) embeds those articles again instead of comparing vectors of two models.
Rows stored before this revision have NULL: they are embedded again once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 09:27:45.081771

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('kb_articles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('embedding_model', sa.String(length=255), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('kb_articles', schema=None) as batch_op:
        batch_op.drop_column('embedding_model')

