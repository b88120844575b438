"""unhandled messages (accepted inbound messages the router could not hand to a session)

Revision ID: 0008_unhandled_messages
Revises: 0007_session_quarantine
Create Date: 2026-12-01 11:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision: str = '0008_unhandled_messages'
down_revision: Union[str, Sequence[str], None] = '0007_session_quarantine'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('unhandled_messages',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('channel_type', sa.String(length=32), nullable=False),
    sa.Column('platform_id', sa.String(length=256), nullable=False),
    sa.Column('thread_id', sa.String(length=256), nullable=True),
    sa.Column('message_id', sa.String(length=256), nullable=False),
    sa.Column('sender', sa.String(length=256), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_unhandled_messages'))
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('unhandled_messages')
