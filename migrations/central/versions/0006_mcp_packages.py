"""MCP servers and pip packages per agent group (container_configs)

Revision ID: 0006_mcp_packages
Revises: 0004_host_notices
Create Date: 2026-12-01 10:40:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_mcp_packages"
down_revision: str | Sequence[str] | None = "0004_host_notices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("container_configs") as batch:
        batch.add_column(sa.Column("mcp_servers", sa.Text(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("packages_pip", sa.Text(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("packages_status", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("container_configs") as batch:
        batch.drop_column("packages_status")
        batch.drop_column("packages_pip")
        batch.drop_column("mcp_servers")
