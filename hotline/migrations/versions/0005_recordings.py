"""recordings: the call record names its recording; who listened to which, and when

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    columns = {column["name"] for column in sa.inspect(bind).get_columns("call_records")}
    if "recording" not in columns:
        with op.batch_alter_table("call_records", schema=None) as batch_op:
            batch_op.add_column(sa.Column("recording", sa.String(length=200), nullable=True))
            batch_op.add_column(sa.Column("recording_seconds", sa.Float(), nullable=True))
    if "recording_access" not in set(sa.inspect(bind).get_table_names()):
        op.create_table(
            "recording_access",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("call_id", sa.String(length=128), nullable=False),
            sa.Column("user", sa.String(length=80), nullable=False),
            sa.Column("role", sa.String(length=16), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_access")),
        )
        with op.batch_alter_table("recording_access", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_recording_access_call_id"), ["call_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recording_access", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recording_access_call_id"))
    op.drop_table("recording_access")
    with op.batch_alter_table("call_records", schema=None) as batch_op:
        batch_op.drop_column("recording_seconds")
        batch_op.drop_column("recording")
