"""The call history: one record per call, kept `desktop.history_retention_days` (a year by default).

A record holds who called, in which language, the IVR path, the queue, the operator, when it was offered,
answered and ended, who ended it (the call's outcome), the final transcript and the place (the one the operator
confirmed or corrected, else the map's best candidate). The archive reads the bus like the event log and writes a
call's record when the call ends, and again when a place arrives after the end. Two desk processes write the same
rows (an upsert by call id). The desk's event log is a replay buffer of a week; this is what a supervisor searches
months later. Tickets have their own table, joined here: a search finds calls by the ticket's category and
district too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from agent_desktop_api.tickets import tickets
from config.database import as_utc_or_none, create_tables, insert_unless_taken, metadata
from events.bus import BusReader, CallEvent, EventBus
from events.contract import (
    AddressCandidatesEvent,
    AddressConfirmed,
    CallAnswered,
    CallEnded,
    CallMonitored,
    CallOffered,
    CallRecorded,
    CallTransferred,
    TranscriptFinal,
)

log = structlog.get_logger(__name__)

MAX_LINES = 2000  # a two-hour call of short lines; more is cut (and said so in the record)
MAX_TEXT = 2000  # characters of one line
ENDED_KEPT = 2000  # ended calls whose late address may still come
OPEN_KEPT = 20_000  # calls in progress; more means ends were missed (a voice process died): the oldest go
PRUNE_EVERY_S = 3600.0
RETRY_MAX_S = 5.0

call_records = sa.Table(
    "call_records",
    metadata,
    sa.Column("call_id", sa.String(128), primary_key=True),
    sa.Column("caller_number", sa.String(64), nullable=True, index=True),
    sa.Column("language", sa.String(16), nullable=True),
    sa.Column("operator_id", sa.String(80), nullable=True, index=True),
    sa.Column("queue", sa.String(64), nullable=True),
    sa.Column("ivr_path", sa.Text, nullable=False),  # JSON list
    sa.Column("interpreter_language", sa.String(16), nullable=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("offered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("reason", sa.String(32), nullable=True),
    sa.Column("waited_s", sa.Float, nullable=True),  # in the queue, until an operator answered
    sa.Column("transcript", sa.Text, nullable=False),  # JSON list of {speaker, text, start_ms}
    sa.Column("district", sa.String(32), nullable=True, index=True),
    sa.Column("town", sa.String(64), nullable=True),
    sa.Column("community", sa.String(64), nullable=True),
    sa.Column("place_source", sa.String(16), nullable=True),  # confirmed | corrected | heard
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("recording", sa.String(200), nullable=True),  # relative to the recordings folder
    sa.Column("recording_seconds", sa.Float, nullable=True),
    # JSON list of {supervisor, mode, at}: who listened to, whispered into or barged into the call, and when
    sa.Column("monitoring", sa.Text, nullable=False, server_default="[]"),
)

recording_access = sa.Table(
    "recording_access",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(128), nullable=False, index=True),
    sa.Column("user", sa.String(80), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass
class _Record:
    call_id: str
    started_at: datetime
    caller_number: str | None = None
    language: str | None = None
    operator_id: str | None = None
    queue: str | None = None
    ivr_path: list[str] = field(default_factory=list)
    interpreter_language: str | None = None
    offered_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    reason: str | None = None
    waited_s: float | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)
    place: tuple[str | None, str | None, str | None] | None = None
    place_source: str | None = None
    recording: str | None = None
    recording_seconds: float | None = None
    monitoring: list[dict[str, Any]] = field(default_factory=list)

    def row(self, now: datetime) -> dict[str, Any]:
        district, town, community = self.place or (None, None, None)
        return {
            "call_id": self.call_id,
            "caller_number": self.caller_number,
            "language": self.language,
            "operator_id": self.operator_id,
            "queue": self.queue,
            "ivr_path": json.dumps(self.ivr_path, ensure_ascii=False),
            "interpreter_language": self.interpreter_language,
            "started_at": self.started_at,
            "offered_at": self.offered_at,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "reason": self.reason,
            "waited_s": self.waited_s,
            "transcript": json.dumps(self.lines, ensure_ascii=False),
            "district": district,
            "town": town,
            "community": community,
            "place_source": self.place_source,
            "updated_at": now,
            "recording": self.recording,
            "recording_seconds": self.recording_seconds,
            "monitoring": json.dumps(self.monitoring, ensure_ascii=False),
        }


@dataclass(frozen=True)
class HistoryQuery:
    """What a search asks for; every field optional. `operator_id` restricts to one operator's calls."""

    operator_id: str | None = None
    number: str | None = None
    text: str | None = None
    category: str | None = None  # a catalogue code or its prefix (02 → every 02.xx.xx)
    district: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: datetime | None = None  # paging: calls that started before this
    limit: int = 50


class CallArchive:
    def __init__(
        self,
        engine: Engine,
        retention_days: float = 366.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.retention_days = retention_days
        self.clock = clock
        self.written = 0
        self._open: OrderedDict[str, _Record] = OrderedDict()
        self._ended: OrderedDict[str, _Record] = OrderedDict()
        self._dirty: dict[str, _Record] = {}
        self._wake = asyncio.Event()
        self._writing = False
        self._reader: BusReader | None = None
        self._tasks: list[asyncio.Task[None]] = []
        create_tables(engine, call_records, recording_access)

    # ---- reading the bus (on the loop) ----

    def start(self, bus: EventBus) -> None:
        if self._reader is None:
            self._reader = BusReader(bus, self.take, "call-archive")
            self._reader.start()
            self._tasks = [
                asyncio.create_task(self._write_loop(), name="call-archive-write"),
                asyncio.create_task(self._prune_loop(), name="call-archive-prune"),
            ]

    async def stop(self) -> None:
        """Stop reading, then write what is still pending (a few seconds at most)."""
        if self._reader is not None:
            await self._reader.stop()
            self._reader = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._dirty:
            with contextlib.suppress(sa.exc.SQLAlchemyError, TimeoutError):
                await asyncio.wait_for(self._flush(), 5.0)

    def take(self, event: CallEvent) -> None:
        body = event.body
        record = self._open.get(event.call_id) or self._ended.get(event.call_id)
        if record is None:  # the call's first event (or the first this process saw: it started mid-call)
            record = self._open[event.call_id] = _Record(event.call_id, event.ts)
            while len(self._open) > OPEN_KEPT:
                self._open.popitem(last=False)
        record.caller_number = body.caller_number or record.caller_number
        record.language = body.language or record.language
        match body:
            case CallOffered() | CallAnswered():
                record.operator_id = body.operator_id
                record.queue = body.queue or record.queue
                record.interpreter_language = body.interpreter_language or record.interpreter_language
                if body.ivr_path:
                    record.ivr_path = list(body.ivr_path)
                if isinstance(body, CallAnswered):
                    record.answered_at = event.ts
                    record.waited_s = body.waited_s
                elif record.offered_at is None:
                    record.offered_at = event.ts
            case CallTransferred():
                record.operator_id = body.operator_id or record.operator_id
            case TranscriptFinal() if body.text.strip() and len(record.lines) < MAX_LINES:
                record.lines.append({"speaker": body.speaker, "text": body.text[:MAX_TEXT], "start_ms": body.start_ms})
            case AddressCandidatesEvent() if body.candidates and record.place_source in (None, "heard"):
                top = body.candidates[0]
                record.place, record.place_source = (top.district, top.town, top.community), "heard"
            case AddressConfirmed():
                record.place, record.place_source = (body.district, body.town, body.community), body.source
            case CallMonitored() if len(record.monitoring) < MAX_LINES:
                entry = {"supervisor": body.supervisor_id, "mode": body.mode, "at": event.ts.isoformat()}
                record.monitoring.append(entry)
            case CallRecorded():
                record.recording, record.recording_seconds = body.recording, body.seconds
            case CallEnded():
                record.ended_at, record.reason = event.ts, body.reason
                self._open.pop(event.call_id, None)
                self._ended[event.call_id] = record
                while len(self._ended) > ENDED_KEPT:
                    self._ended.popitem(last=False)
            case _:
                return
        if record.ended_at is not None:  # written at the end, and again for what comes after it
            self._dirty[record.call_id] = record
            self._wake.set()

    # ---- writing (worker threads) ----

    async def _write_loop(self) -> None:
        delay = 0.2
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._flush()
                delay = 0.2
            except sa.exc.SQLAlchemyError as exc:  # the records stay dirty: written once the database takes them
                log.warning("history.write_retry", error=str(exc)[:200], calls=len(self._dirty))
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)
                self._wake.set()

    async def _flush(self) -> None:
        batch, self._dirty = self._dirty, {}
        now = self.clock()
        rows = [record.row(now) for record in batch.values()]
        self._writing = True
        try:
            await asyncio.to_thread(self._write, rows)
        except BaseException:
            for call_id, record in batch.items():
                self._dirty.setdefault(call_id, record)
            raise
        finally:
            self._writing = False
        self.written += len(rows)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            for row in rows:
                _upsert(conn, row)

    async def settled(self, timeout: float = 5.0) -> None:
        """Wait until every event published so far is read and every ended call among them written (tests)."""
        async with asyncio.timeout(timeout):
            while self._busy():  # noqa: ASYNC110  (the bus has no "drained" signal)
                await asyncio.sleep(0.01)

    def _busy(self) -> bool:
        reading = self._reader is not None and self._reader.pending() > 0
        return reading or bool(self._dirty) or self._writing

    # ---- retention ----

    async def _prune_loop(self) -> None:
        while True:
            cutoff = self.clock() - timedelta(days=self.retention_days)
            try:
                gone = await asyncio.to_thread(self.prune, cutoff)
                if gone:
                    log.info("history.pruned", calls=gone, older_than=cutoff.isoformat())
            except sa.exc.SQLAlchemyError:
                log.exception("history.prune_failed")
            await asyncio.sleep(PRUNE_EVERY_S)

    def prune(self, cutoff: datetime) -> int:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(recording_access).where(recording_access.c.at < cutoff))
            return int(conn.execute(sa.delete(call_records).where(call_records.c.started_at < cutoff)).rowcount)

    # ---- reading the history (blocking: run in a thread) ----

    def search(self, query: HistoryQuery) -> list[dict[str, Any]]:
        c, t = call_records.c, tickets.c
        district = sa.func.coalesce(t.district, c.district)
        select = sa.select(call_records, t.status, t.ticket, t.submitted_at, t.category_code).select_from(
            call_records.outerjoin(tickets, t.call_id == c.call_id)
        )
        conditions: list[sa.ColumnElement[bool]] = []
        if query.operator_id is not None:
            conditions.append(c.operator_id == query.operator_id)
        if query.number:
            conditions.append(c.caller_number.contains(query.number, autoescape=True))
        if query.text:
            conditions.append(
                sa.or_(
                    c.transcript.contains(query.text, autoescape=True), t.ticket.contains(query.text, autoescape=True)
                )
            )
        if query.category:
            conditions.append(t.category_code.startswith(query.category, autoescape=True))
        if query.district:
            conditions.append(district == query.district)
        if query.since is not None:
            conditions.append(c.started_at >= query.since)
        if query.until is not None:
            conditions.append(c.started_at < query.until)
        if query.before is not None:
            conditions.append(c.started_at < query.before)
        select = select.where(*conditions).order_by(c.started_at.desc(), c.call_id).limit(query.limit)
        with self.engine.connect() as conn:
            return [_summary(row) for row in conn.execute(select).mappings()]

    def day(self, since: datetime, answer_within_s: float) -> dict[str, int]:
        """Since `since`: calls, calls that queued, answered (and within `answer_within_s`), and abandoned (the
        caller hung up while queued or ringing)."""
        c = call_records.c
        queued = c.queue.is_not(None)
        answered = c.answered_at.is_not(None)
        abandoned = sa.and_(queued, c.answered_at.is_(None), c.reason == "caller_hangup")
        quick = sa.and_(answered, c.waited_s <= answer_within_s)
        counts = sa.select(
            sa.func.count(),
            sa.func.count().filter(queued),
            sa.func.count().filter(answered),
            sa.func.count().filter(quick),
            sa.func.count().filter(abandoned),
        ).where(c.started_at >= since)
        with self.engine.connect() as conn:
            calls, queued_n, answered_n, quick_n, abandoned_n = conn.execute(counts).one()
        return {
            "calls": int(calls),
            "queued": int(queued_n),
            "answered": int(answered_n),
            "answered_in_time": int(quick_n),
            "abandoned": int(abandoned_n),
        }

    def record(self, call_id: str) -> dict[str, Any] | None:
        """One call's record with its transcript and ticket; None if there is none."""
        t = tickets.c
        select = (
            sa.select(call_records, t.status, t.ticket, t.submitted_at, t.category_code)
            .select_from(call_records.outerjoin(tickets, t.call_id == call_records.c.call_id))
            .where(call_records.c.call_id == call_id)
        )
        with self.engine.connect() as conn:
            row = conn.execute(select).mappings().first()
        if row is None:
            return None
        return {
            **_summary(row),
            "transcript": json.loads(row["transcript"]),
            "recording": row["recording"],
            "monitoring": json.loads(row["monitoring"]),
        }

    def listened(self, call_id: str, user: str, role: str) -> None:
        """Who opened a call's recording, and when (kept with the record's retention)."""
        with self.engine.begin() as conn:
            conn.execute(sa.insert(recording_access).values(call_id=call_id, user=user, role=role, at=self.clock()))

    def listeners(self, call_id: str) -> list[dict[str, Any]]:
        a = recording_access.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(a.user, a.role, a.at).where(a.call_id == call_id).order_by(a.id)).mappings()
            return [{"user": row["user"], "role": row["role"], "at": as_utc_or_none(row["at"])} for row in rows]


def _summary(row: sa.RowMapping) -> dict[str, Any]:
    ticket = json.loads(row["ticket"]) if row["ticket"] else None
    lines = json.loads(row["transcript"])
    return {
        "call_id": row["call_id"],
        "caller_number": row["caller_number"],
        "language": row["language"],
        "operator_id": row["operator_id"],
        "queue": row["queue"],
        "ivr_path": json.loads(row["ivr_path"]),
        "started_at": as_utc_or_none(row["started_at"]),
        "answered_at": as_utc_or_none(row["answered_at"]),
        "ended_at": as_utc_or_none(row["ended_at"]),
        "reason": row["reason"],
        "place": {
            "district": row["district"],
            "town": row["town"],
            "community": row["community"],
            "source": row["place_source"],
        }
        if row["district"]
        else None,
        "lines": len(lines),
        "recording_seconds": row["recording_seconds"] if row["recording"] else None,
        "first_line": next((line["text"] for line in lines if line["speaker"] == "caller"), None),
        "ticket": {
            "status": row["status"],
            "category_code": row["category_code"] or (ticket or {}).get("category_code"),
            "category": (ticket or {}).get("category"),
            "district": (ticket or {}).get("district"),
            "summary": (ticket or {}).get("summary"),
            "response": (ticket or {}).get("response"),
            "submitted_at": as_utc_or_none(row["submitted_at"]),
        }
        if row["status"] == "submitted"
        else None,
    }


def _upsert(conn: Connection, row: dict[str, Any]) -> None:
    exists = conn.execute(sa.select(call_records.c.call_id).where(call_records.c.call_id == row["call_id"])).first()
    if exists is None and insert_unless_taken(conn, call_records, row):
        return  # else another desk instance inserted the same call this very moment: update its row
    values = {k: v for k, v in row.items() if k != "started_at"}  # the first desk to see the call set it
    conn.execute(sa.update(call_records).where(call_records.c.call_id == row["call_id"]).values(**values))
