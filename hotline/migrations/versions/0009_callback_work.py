"""callback_requests: the desk's work on each request (who calls back now, tries, how the last one went)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 06:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = ("claimed_by", "claimed_at", "attempts", "outcome", "done_at", "done_by")


def upgrade() -> None:
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("callback_requests")}
    new: list[sa.Column[object]] = [
        sa.Column("claimed_by", sa.String(length=80), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.String(length=80), nullable=True),
    ]
    with op.batch_alter_table("callback_requests", schema=None) as batch_op:
        for column in new:
            if column.name not in present:
                batch_op.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("callback_requests", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.drop_column(name)
