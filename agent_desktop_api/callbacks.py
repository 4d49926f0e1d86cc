"""Callers promised a call back: the desk's list, from the voice side's `callback.requested` events (any node).

A request stays on the list until an operator has called the caller back. An operator takes one first (a
conditional update: two operators, or two desk instances, never both get it), then says how it went: reached,
no answer (it stays on the list, for another try), or a wrong number. A taken one that nobody finished within
`CLAIM_S` is free again. Every desk instance reads the bus and stores the same requests (one row per call).
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from config.database import create_tables, insert_unless_taken, metadata
from events.bus import BusReader, CallEvent, EventBus
from events.contract import CallbackRequested

log = structlog.get_logger(__name__)

CLAIM_S = 30 * 60  # a caller taken but not called back within this is free for another operator
Outcome = Literal["reached", "no_answer", "wrong_number"]
FINAL_OUTCOMES = ("reached", "wrong_number")  # "no_answer" keeps the caller on the list

callbacks = sa.Table(
    "desk_callbacks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(128), nullable=False, unique=True),
    sa.Column("caller_number", sa.String(64), nullable=True),
    sa.Column("language", sa.String(16), nullable=True),
    sa.Column("queue", sa.String(64), nullable=False),
    sa.Column("waited_s", sa.Float, nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("claimed_by", sa.String(80), nullable=True),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("outcome", sa.String(16), nullable=True),  # the last attempt's
    sa.Column("done_at", sa.DateTime(timezone=True), nullable=True, index=True),
    sa.Column("done_by", sa.String(80), nullable=True),
)


class CallbackNotFound(LookupError):
    pass


class CallbackTaken(Exception):
    """Another operator has it, or it is done: the message says which."""


@dataclass(frozen=True)
class Request:
    call_id: str
    caller_number: str | None
    language: str | None
    queue: str
    waited_s: float
    requested_at: datetime


class CallbackList:
    def __init__(self, engine: Engine, clock: Any = lambda: datetime.now(UTC)) -> None:
        self.engine = engine
        self.clock = clock
        create_tables(engine, callbacks)
        self._reader: BusReader | None = None
        self._incoming: asyncio.Queue[Request] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="desk-callbacks")

    def start(self, bus: EventBus) -> None:
        if self._reader is None:
            self._reader = BusReader(bus, self.take, "callbacks")
            self._reader.start()
            self._writer = asyncio.get_running_loop().create_task(self._write(), name="callbacks-write")

    async def stop(self) -> None:
        if self._reader is not None:
            await self._reader.stop()
            self._reader = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._incoming.join(), 2.0)
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        self._thread.shutdown(wait=False)

    def take(self, event: CallEvent) -> None:
        body = event.body
        if isinstance(body, CallbackRequested):
            request = Request(body.call_id, body.caller_number, body.language, body.queue, body.waited_s, event.ts)
            self._incoming.put_nowait(request)

    async def settled(self, timeout: float = 5.0) -> None:
        """Every request read so far is stored (tests)."""
        async with asyncio.timeout(timeout):
            while self._reader is not None and self._reader.pending():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            await self._incoming.join()

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            request = await self._incoming.get()
            delay = 0.2
            try:
                while True:
                    try:
                        await loop.run_in_executor(self._thread, self._store, request)
                        break
                    except sa.exc.SQLAlchemyError as exc:  # kept and retried: a promise to a caller is not dropped
                        log.warning("callbacks.write_retry", call_id=request.call_id, error=str(exc)[:200])
                        await asyncio.sleep(delay)
                        delay = min(2.0, delay * 2)
            finally:
                self._incoming.task_done()

    def _store(self, request: Request) -> None:
        row = {
            "call_id": request.call_id,
            "caller_number": request.caller_number,
            "language": request.language,
            "queue": request.queue,
            "waited_s": request.waited_s,
            "requested_at": request.requested_at,
            "attempts": 0,
        }
        with self.engine.begin() as conn:
            insert_unless_taken(conn, callbacks, row)  # taken: another desk instance stored it

    # ---- the operators' work (blocking: call from a thread) ----

    def pending(self) -> list[dict[str, Any]]:
        """Callers not called back yet, the longest waiting first."""
        query = sa.select(callbacks).where(callbacks.c.done_at.is_(None)).order_by(callbacks.c.requested_at)
        now = self.clock()
        with self.engine.connect() as conn:
            return [_summary(row, now) for row in conn.execute(query).mappings()]

    def claim(self, callback_id: int, operator: str) -> dict[str, Any]:
        """`operator` calls this caller back now; CallbackTaken when someone else has them (or it is done)."""
        now = self.clock()
        table = callbacks.c
        free = sa.or_(table.claimed_by.is_(None), table.claimed_by == operator, table.claimed_at < now - _CLAIM)
        with self.engine.begin() as conn:
            taken = conn.execute(
                sa.update(callbacks)
                .where(table.id == callback_id, table.done_at.is_(None), free)
                .values(claimed_by=operator, claimed_at=now)
            ).rowcount
            row = conn.execute(sa.select(callbacks).where(table.id == callback_id)).mappings().first()
        if row is None:
            raise CallbackNotFound(callback_id)
        if not taken:
            raise CallbackTaken(_why_not(row))
        return _summary(row, now)

    def finish(self, callback_id: int, operator: str, outcome: Outcome) -> dict[str, Any]:
        """How the call back went. `no_answer` puts the caller back on the list for another try."""
        now = self.clock()
        table = callbacks.c
        done = outcome in FINAL_OUTCOMES
        with self.engine.begin() as conn:
            changed = conn.execute(
                sa.update(callbacks)
                .where(table.id == callback_id, table.done_at.is_(None), table.claimed_by == operator)
                .values(
                    outcome=outcome,
                    attempts=table.attempts + 1,
                    done_at=now if done else None,
                    done_by=operator if done else None,
                    claimed_by=None,
                    claimed_at=None,
                )
            ).rowcount
            row = conn.execute(sa.select(callbacks).where(table.id == callback_id)).mappings().first()
        if row is None:
            raise CallbackNotFound(callback_id)
        if not changed:
            raise CallbackTaken(_why_not(row, finishing=operator))
        log.info("callbacks.finished", call_id=row["call_id"], operator=operator, outcome=outcome)
        return _summary(row, now)


_CLAIM = timedelta(seconds=CLAIM_S)


def _why_not(row: sa.RowMapping, finishing: str | None = None) -> str:
    if row["done_at"] is not None:
        return f"already called back by {row['done_by']} ({row['outcome']})"
    if row["claimed_by"] is None and finishing is not None:
        return "take it first"
    return f"{row['claimed_by']} is calling them back"


def _summary(row: sa.RowMapping, now: datetime) -> dict[str, Any]:
    claimed_at = _utc(row["claimed_at"])
    claimed = row["claimed_by"] if claimed_at is not None and now - claimed_at < _CLAIM else None
    return {
        "id": row["id"],
        "call_id": row["call_id"],
        "caller_number": row["caller_number"],
        "language": row["language"],
        "queue": row["queue"],
        "waited_s": row["waited_s"],
        "requested_at": _utc(row["requested_at"]),
        "claimed_by": claimed,
        "attempts": row["attempts"],
        "outcome": row["outcome"],
        "done_at": _utc(row["done_at"]),
    }


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


__all__ = ["CallbackList", "CallbackNotFound", "CallbackTaken", "Outcome", "callbacks"]
