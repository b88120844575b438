"""cli replies name the outbound row they came from (a re-send after a crash is stored once)

Revision ID: 0011_cli_delivery_key
Revises: 0010_notice_failure
Create Date: 2026-12-01 20:45:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0011_cli_delivery_key'
down_revision: Union[str, Sequence[str], None] = '0010_notice_failure'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('cli_replies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivery_key', sa.String(length=160), nullable=True))
        batch_op.create_index('ux_cli_replies_delivery_key', ['delivery_key'], unique=True)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('cli_replies', schema=None) as batch_op:
        batch_op.drop_index('ux_cli_replies_delivery_key')
        batch_op.drop_column('delivery_key')
