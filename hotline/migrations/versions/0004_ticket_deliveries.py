"""ticket deliveries: the outbox of submitted tickets for the dispatch webhook

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 18:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "ticket_deliveries" in set(sa.inspect(op.get_bind()).get_table_names()):  # made on first use
        return
    op.create_table(
        "ticket_deliveries",
        sa.Column("call_id", sa.String(length=128), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_ticket_deliveries")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_ticket_deliveries_idempotency_key")),
    )
    with op.batch_alter_table("ticket_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_deliveries_next_attempt_at"), ["next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_deliveries_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ticket_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_deliveries_status"))
        batch_op.drop_index(batch_op.f("ix_ticket_deliveries_next_attempt_at"))
    op.drop_table("ticket_deliveries")
