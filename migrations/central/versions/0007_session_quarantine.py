"""quarantined sessions (a session DB or file that failed the confined-open probe)

Revision ID: 0007_session_quarantine
Revises: 0006_mcp_packages
Create Date: 2026-12-01 10:20:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision: str = '0007_session_quarantine'
down_revision: Union[str, Sequence[str], None] = '0006_mcp_packages'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('quarantined_sessions',
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('problem', sa.String(length=32), nullable=False),
    sa.Column('cause', sa.Text(), nullable=False),
    sa.Column('quarantined_at', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_quarantined_sessions_session_id_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('session_id', name=op.f('pk_quarantined_sessions'))
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('quarantined_sessions')
