"""desk_callbacks: callers promised a call back, as the desk lists them until an operator has called back

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


def upgrade() -> None:
    if "desk_callbacks" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "desk_callbacks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(length=128), nullable=False),
        sa.Column("caller_number", sa.String(length=64), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("waited_s", sa.Float(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=80), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.String(length=80), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_callbacks")),
        sa.UniqueConstraint("call_id", name=op.f("uq_desk_callbacks_call_id")),
    )
    with op.batch_alter_table("desk_callbacks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_desk_callbacks_done_at"), ["done_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_desk_callbacks_requested_at"), ["requested_at"], unique=False)


def downgrade() -> None:
    op.drop_table("desk_callbacks")
