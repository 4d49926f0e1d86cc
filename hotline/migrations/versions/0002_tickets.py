"""tickets: the operator's edits over the call's draft, their history, the submitted ticket

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 13:42:02.395609
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())  # a store may have made them on first use
    if "ticket_changes" not in existing:
        op.create_table(
            "ticket_changes",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("call_id", sa.String(length=128), nullable=False),
            sa.Column("field", sa.String(length=32), nullable=False),
            sa.Column("old", sa.Text(), nullable=True),
            sa.Column("new", sa.Text(), nullable=True),
            sa.Column("changed_by", sa.String(length=80), nullable=False),
            sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_changes")),
        )
        with op.batch_alter_table("ticket_changes", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_ticket_changes_call_id"), ["call_id"], unique=False)

    if "tickets" not in existing:
        op.create_table(
            "tickets",
            sa.Column("call_id", sa.String(length=128), nullable=False),
            sa.Column("operator_id", sa.String(length=80), nullable=True),
            sa.Column("caller_number", sa.String(length=64), nullable=True),
            sa.Column("edits", sa.Text(), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("ticket", sa.Text(), nullable=True),
            sa.Column("submitted_by", sa.String(length=80), nullable=True),
            sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("call_id", name=op.f("pk_tickets")),
        )
        with op.batch_alter_table("tickets", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_tickets_caller_number"), ["caller_number"], unique=False)
            batch_op.create_index(batch_op.f("ix_tickets_operator_id"), ["operator_id"], unique=False)
            batch_op.create_index(batch_op.f("ix_tickets_submitted_at"), ["submitted_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_submitted_at"))
        batch_op.drop_index(batch_op.f("ix_tickets_operator_id"))
        batch_op.drop_index(batch_op.f("ix_tickets_caller_number"))

    op.drop_table("tickets")
    with op.batch_alter_table("ticket_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_changes_call_id"))

    op.drop_table("ticket_changes")
