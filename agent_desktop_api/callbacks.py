"""Callers promised a call back, as the desk lists them: the voice side's requests (voice.callbacks, written by
every node to the shared database) until an operator has called back.

An operator takes one first (a conditional update: two operators, or two desk instances, never both get it), then
says how it went: reached, no answer (it stays on the list, for another try), or a wrong number. A taken one that
nobody finished within `CLAIM_S` is free again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from config.database import as_utc, create_tables
from voice.callbacks import callback_requests as callbacks

log = structlog.get_logger(__name__)

CLAIM_S = 30 * 60  # a caller taken but not called back within this is free for another operator
Outcome = Literal["reached", "no_answer", "wrong_number"]
FINAL_OUTCOMES = ("reached", "wrong_number")  # "no_answer" keeps the caller on the list


class CallbackNotFound(LookupError):
    pass


class CallbackTaken(Exception):
    """Another operator has it, or it is done: the message says which."""


class CallbackList:
    """Blocking (the routes call it from a thread)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.engine = engine
        self.clock = clock
        create_tables(engine, callbacks)  # a desk process may meet the database before any voice process

    def pending(self) -> list[dict[str, Any]]:
        """Callers not called back yet, the longest waiting first."""
        query = sa.select(callbacks).where(callbacks.c.done.is_(False)).order_by(callbacks.c.requested_at)
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
                .where(table.id == callback_id, table.done.is_(False), free)
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
                .where(table.id == callback_id, table.done.is_(False), table.claimed_by == operator)
                .values(
                    done=done,
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
    if row["done"]:
        return f"already called back by {row['done_by']} ({row['outcome']})"
    if row["claimed_by"] is None and finishing is not None:
        return "take it first"
    return f"{row['claimed_by']} is calling them back"


def _summary(row: sa.RowMapping, now: datetime) -> dict[str, Any]:
    claimed_at = as_utc(row["claimed_at"]) if row["claimed_at"] is not None else None
    claimed = row["claimed_by"] if claimed_at is not None and now - claimed_at < _CLAIM else None
    return {
        "id": row["id"],
        "call_id": row["call_id"],
        "caller_number": row["caller_number"],
        "language": row["language"],
        "queue": row["queue"],
        "waited_s": row["waited_s"],
        "requested_at": as_utc(row["requested_at"]),
        "claimed_by": claimed,
        "attempts": row["attempts"],
        "outcome": row["outcome"],
        "done_at": as_utc(row["done_at"]) if row["done_at"] is not None else None,
    }


__all__ = ["CallbackList", "CallbackNotFound", "CallbackTaken", "Outcome"]
