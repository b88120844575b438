"""host notices say when they stand in for a lost answer (host_notices.failure)

Revision ID: 0010_notice_failure
Revises: 0009_cli_backlog
Create Date: 2026-12-01 11:05:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0010_notice_failure'
down_revision: Union[str, Sequence[str], None] = '0009_cli_backlog'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('host_notices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failure', sa.String(length=32), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('host_notices', schema=None) as batch_op:
        batch_op.drop_column('failure')
