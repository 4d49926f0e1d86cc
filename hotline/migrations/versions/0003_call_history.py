"""call history: one record per call (call_records); tickets carry their category code and district for search

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 18:20:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())  # the archive may have made it on first use
    if "call_records" not in existing:
        op.create_table(
            "call_records",
            sa.Column("call_id", sa.String(length=128), nullable=False),
            sa.Column("caller_number", sa.String(length=64), nullable=True),
            sa.Column("language", sa.String(length=16), nullable=True),
            sa.Column("operator_id", sa.String(length=80), nullable=True),
            sa.Column("queue", sa.String(length=64), nullable=True),
            sa.Column("ivr_path", sa.Text(), nullable=False),
            sa.Column("interpreter_language", sa.String(length=16), nullable=True),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("offered_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("reason", sa.String(length=32), nullable=True),
            sa.Column("waited_s", sa.Float(), nullable=True),
            sa.Column("transcript", sa.Text(), nullable=False),
            sa.Column("district", sa.String(length=32), nullable=True),
            sa.Column("town", sa.String(length=64), nullable=True),
            sa.Column("community", sa.String(length=64), nullable=True),
            sa.Column("place_source", sa.String(length=16), nullable=True),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("call_id", name=op.f("pk_call_records")),
        )
        with op.batch_alter_table("call_records", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_call_records_caller_number"), ["caller_number"], unique=False)
            batch_op.create_index(batch_op.f("ix_call_records_district"), ["district"], unique=False)
            batch_op.create_index(batch_op.f("ix_call_records_operator_id"), ["operator_id"], unique=False)
            batch_op.create_index(batch_op.f("ix_call_records_started_at"), ["started_at"], unique=False)

    columns = {column["name"] for column in sa.inspect(bind).get_columns("tickets")}
    if "category_code" not in columns:
        with op.batch_alter_table("tickets", schema=None) as batch_op:
            batch_op.add_column(sa.Column("category_code", sa.String(length=16), nullable=True))
            batch_op.add_column(sa.Column("district", sa.String(length=32), nullable=True))
            batch_op.create_index(batch_op.f("ix_tickets_category_code"), ["category_code"], unique=False)
            batch_op.create_index(batch_op.f("ix_tickets_district"), ["district"], unique=False)
        # tickets submitted before: their category and district come out of the stored ticket
        tickets = sa.table(
            "tickets", sa.column("call_id"), sa.column("ticket"), sa.column("category_code"), sa.column("district")
        )
        for call_id, ticket in bind.execute(sa.select(tickets.c.call_id, tickets.c.ticket)).all():
            fields = json.loads(ticket) if ticket else {}
            bind.execute(
                sa.update(tickets)
                .where(tickets.c.call_id == call_id)
                .values(category_code=fields.get("category_code"), district=fields.get("district"))
            )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_district"))
        batch_op.drop_index(batch_op.f("ix_tickets_category_code"))
        batch_op.drop_column("district")
        batch_op.drop_column("category_code")
    with op.batch_alter_table("call_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_records_started_at"))
        batch_op.drop_index(batch_op.f("ix_call_records_operator_id"))
        batch_op.drop_index(batch_op.f("ix_call_records_district"))
        batch_op.drop_index(batch_op.f("ix_call_records_caller_number"))
    op.drop_table("call_records")
