"""task time zone and catch-up policy

Revision ID: 0002_inbound
Revises: 0001_inbound
Create Date: 2026-11-21 03:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0002_inbound'
down_revision: Union[str, Sequence[str], None] = '0001_inbound'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('messages_in', sa.Column('recurrence_tz', sa.String(length=64), nullable=True))
    op.add_column('messages_in', sa.Column('catch_up', sa.String(length=8), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('messages_in') as batch:
        batch.drop_column('catch_up')
        batch.drop_column('recurrence_tz')
