"""Callback requests: a caller who waited the maximum is promised a call back (number, language, time). Every
node writes them to the shared database; the desk lists them and records the calls back
(agent_desktop_api.callbacks)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import sqlalchemy as sa

from config.database import create_tables, metadata

callback_requests = sa.Table(
    "callback_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(64), nullable=False),
    sa.Column("caller_number", sa.String(64), nullable=False),
    sa.Column("language", sa.String(16), nullable=False),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("waited_s", sa.Float, nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("done", sa.Boolean, nullable=False, default=False),
    # The desk's work on it (agent_desktop_api.callbacks): who calls back now, tries, how the last one went.
    sa.Column("claimed_by", sa.String(80), nullable=True),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("outcome", sa.String(16), nullable=True),
    sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("done_by", sa.String(80), nullable=True),
)


class CallbackStore:
    """Writes go to a worker thread: the database driver blocks."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        create_tables(engine, callback_requests)

    async def record(self, call_id: str, caller_number: str, language: str, queue: str, waited_s: float) -> None:
        row = {
            "call_id": call_id,
            "caller_number": caller_number,
            "language": language,
            "queue": queue,
            "waited_s": round(waited_s, 3),
            "requested_at": datetime.now(UTC),
            "done": False,
        }
        await asyncio.to_thread(self._insert, row)

    def _insert(self, row: dict[str, object]) -> None:
        with self._engine.begin() as conn:
            conn.execute(callback_requests.insert().values(**row))
