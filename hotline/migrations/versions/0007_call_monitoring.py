"""call_records.monitoring: which supervisors came into the call, how, and when they left

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("call_records")}
    if "monitoring" not in columns:
        with op.batch_alter_table("call_records", schema=None) as batch_op:
            batch_op.add_column(sa.Column("monitoring", sa.Text(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("call_records", schema=None) as batch_op:
        batch_op.drop_column("monitoring")
