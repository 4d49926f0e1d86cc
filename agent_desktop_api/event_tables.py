"""The desktop event log's tables: the messages per operator stream, each stream's last seq, the calls the log
knows, and the epoch that names the database the numbering lives in (event_log.py says how they are used)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from config.database import metadata

desktop_events = sa.Table(
    "desktop_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("operator_id", sa.String(80), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("call_id", sa.String(128), nullable=False, index=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("body", sa.Text, nullable=False),  # the message exactly as sent (JSON)
    sa.UniqueConstraint("operator_id", "seq"),  # also the index that resume reads by
    sa.Index("ix_desktop_events_type_ts", "type", "ts"),  # pruning partials
)

desktop_streams = sa.Table(
    "desktop_streams",
    metadata,
    sa.Column("operator_id", sa.String(80), primary_key=True),
    sa.Column("last_seq", sa.Integer, nullable=False),
)

desktop_epoch = sa.Table(
    "desktop_epoch",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("epoch", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

desktop_calls = sa.Table(
    "desktop_calls",
    metadata,
    sa.Column("call_id", sa.String(128), primary_key=True),
    sa.Column("operator_id", sa.String(80), nullable=True),  # current operator; the last one once ended
    sa.Column("caller_number", sa.String(64), nullable=True),
    sa.Column("language", sa.String(16), nullable=True),
    sa.Column("queue", sa.String(64), nullable=True),
    sa.Column("ivr_path", sa.Text, nullable=False, default="[]"),
    sa.Column("interpreter_language", sa.String(16), nullable=True),
    sa.Column("offered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("reason", sa.String(64), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

TABLES = (desktop_events, desktop_streams, desktop_calls, desktop_epoch)


def upsert(conn: Connection, table: sa.Table, key: sa.Column[Any], value: str, row: dict[str, Any]) -> None:
    """Portable update-or-insert (SQLite and PostgreSQL); one writer (the consumer) makes it race-free."""
    values = {k: v for k, v in row.items() if k != key.name}
    if conn.execute(sa.update(table).where(key == value).values(**values)).rowcount == 0:
        conn.execute(sa.insert(table).values({key.name: value, **values}))
