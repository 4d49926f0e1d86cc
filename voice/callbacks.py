"""Callback requests: a caller who waited the maximum is promised a call back (number, language, time)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
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
)


@dataclass(frozen=True)
class CallbackRequest:
    call_id: str
    caller_number: str
    language: str
    queue: str
    waited_s: float
    requested_at: datetime


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

    async def pending(self) -> list[CallbackRequest]:
        return await asyncio.to_thread(self._pending)

    def _pending(self) -> list[CallbackRequest]:
        query = sa.select(callback_requests).where(callback_requests.c.done.is_(False)).order_by("id")
        with self._engine.connect() as conn:
            return [
                CallbackRequest(
                    r.call_id, r.caller_number, r.language, r.queue, r.waited_s, r.requested_at.replace(tzinfo=UTC)
                )
                for r in conn.execute(query)
            ]
