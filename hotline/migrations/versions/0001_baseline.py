"""baseline: the schema as of the first migration

Revision ID: 0001
Revises: (none)
Create Date: 2026-12-03 13:03:09.310121
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database from before migrations has some of these tables already (made on first use): keep them and
    # their rows, create the rest.
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "address_confirmations" not in existing:
        op.create_table(
            "address_confirmations",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("call_id", sa.String(length=128), nullable=False),
            sa.Column("segment_id", sa.String(length=128), nullable=True),
            sa.Column("district", sa.String(length=64), nullable=False),
            sa.Column("town", sa.String(length=64), nullable=True),
            sa.Column("community", sa.String(length=64), nullable=True),
            sa.Column("lng", sa.Float(), nullable=True),
            sa.Column("lat", sa.Float(), nullable=True),
            sa.Column("source", sa.String(length=16), nullable=False),
            sa.Column("operator_id", sa.String(length=80), nullable=True),
            sa.Column("confirmed_by", sa.String(length=80), nullable=False),
            sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_address_confirmations")),
        )
        with op.batch_alter_table("address_confirmations", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_address_confirmations_call_id"), ["call_id"], unique=False)

    if "callback_requests" not in existing:
        op.create_table(
            "callback_requests",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("call_id", sa.String(length=64), nullable=False),
            sa.Column("caller_number", sa.String(length=64), nullable=False),
            sa.Column("language", sa.String(length=16), nullable=False),
            sa.Column("queue", sa.String(length=64), nullable=False),
            sa.Column("waited_s", sa.Float(), nullable=False),
            sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("done", sa.Boolean(), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_requests")),
        )

    if "database_probe" not in existing:
        op.create_table(
            "database_probe",
            sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("beat", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_database_probe")),
        )

    if "desktop_calls" not in existing:
        op.create_table(
            "desktop_calls",
            sa.Column("call_id", sa.String(length=128), nullable=False),
            sa.Column("operator_id", sa.String(length=80), nullable=True),
            sa.Column("caller_number", sa.String(length=64), nullable=True),
            sa.Column("language", sa.String(length=16), nullable=True),
            sa.Column("queue", sa.String(length=64), nullable=True),
            sa.Column("ivr_path", sa.Text(), nullable=False),
            sa.Column("interpreter_language", sa.String(length=16), nullable=True),
            sa.Column("offered_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("reason", sa.String(length=64), nullable=True),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("call_id", name=op.f("pk_desktop_calls")),
        )
        with op.batch_alter_table("desktop_calls", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_desktop_calls_updated_at"), ["updated_at"], unique=False)

    if "desktop_epoch" not in existing:
        op.create_table(
            "desktop_epoch",
            sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("epoch", sa.String(length=32), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_desktop_epoch")),
        )

    if "desktop_events" not in existing:
        op.create_table(
            "desktop_events",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("operator_id", sa.String(length=80), nullable=False),
            sa.Column("seq", sa.Integer(), nullable=False),
            sa.Column("call_id", sa.String(length=128), nullable=False),
            sa.Column("type", sa.String(length=64), nullable=False),
            sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
            sa.Column("body", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_desktop_events")),
            sa.UniqueConstraint("operator_id", "seq", name=op.f("uq_desktop_events_operator_id")),
        )
        with op.batch_alter_table("desktop_events", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_desktop_events_call_id"), ["call_id"], unique=False)
            batch_op.create_index(batch_op.f("ix_desktop_events_ts"), ["ts"], unique=False)
            batch_op.create_index("ix_desktop_events_type_ts", ["type", "ts"], unique=False)

    if "desktop_streams" not in existing:
        op.create_table(
            "desktop_streams",
            sa.Column("operator_id", sa.String(length=80), nullable=False),
            sa.Column("last_seq", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("operator_id", name=op.f("pk_desktop_streams")),
        )

    if "flow_versions" not in existing:
        op.create_table(
            "flow_versions",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("number", sa.String(length=20), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("content", sa.Text(), nullable=False),
            sa.Column("content_hash", sa.String(length=64), nullable=False),
            sa.Column("author", sa.String(length=80), nullable=False),
            sa.Column("comment", sa.Text(), nullable=False),
            sa.Column("source", sa.String(length=255), nullable=True),
            sa.Column("restored_from", sa.Integer(), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_versions")),
            sa.UniqueConstraint("number", "version", name=op.f("uq_flow_versions_number")),
        )

    if "users" not in existing:
        op.create_table(
            "users",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("name", sa.String(length=80), nullable=False),
            sa.Column("role", sa.String(length=16), nullable=False),
            sa.Column("password_hash", sa.Text(), nullable=False),
            sa.Column("disabled", sa.Boolean(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
            sa.UniqueConstraint("name", name=op.f("uq_users_name")),
        )

    if "auth_tokens" not in existing:
        op.create_table(
            "auth_tokens",
            sa.Column("token_hash", sa.String(length=64), nullable=False),
            sa.Column("user_id", sa.Integer(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(
                ["user_id"], ["users.id"], name=op.f("fk_auth_tokens_user_id_users"), ondelete="CASCADE"
            ),
            sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_auth_tokens")),
        )
        with op.batch_alter_table("auth_tokens", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_auth_tokens_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("auth_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_tokens_expires_at"))

    op.drop_table("auth_tokens")
    op.drop_table("users")
    op.drop_table("flow_versions")
    op.drop_table("desktop_streams")
    with op.batch_alter_table("desktop_events", schema=None) as batch_op:
        batch_op.drop_index("ix_desktop_events_type_ts")
        batch_op.drop_index(batch_op.f("ix_desktop_events_ts"))
        batch_op.drop_index(batch_op.f("ix_desktop_events_call_id"))

    op.drop_table("desktop_events")
    op.drop_table("desktop_epoch")
    with op.batch_alter_table("desktop_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_desktop_calls_updated_at"))

    op.drop_table("desktop_calls")
    op.drop_table("database_probe")
    op.drop_table("callback_requests")
    with op.batch_alter_table("address_confirmations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_address_confirmations_call_id"))

    op.drop_table("address_confirmations")
