"""desktop_bus_position: where the desk event log's writer is in the bus's kept events (several desk instances)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "desktop_bus_position" not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table(
            "desktop_bus_position",
            sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("stream", sa.String(length=64), nullable=False),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.Column("writer", sa.String(length=32), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_desktop_bus_position")),
        )


def downgrade() -> None:
    op.drop_table("desktop_bus_position")
