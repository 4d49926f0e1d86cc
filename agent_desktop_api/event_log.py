"""The desktop event log: bus events numbered per operator stream, stored, and handed to live listeners.

One consumer task reads the bus in batches. For each event it decides whose stream it belongs to (the operator a
call was offered to / answered by / transferred to; later events of the call follow that operator; `call.ended`
closes it), gives it that stream's next `seq`, writes the batch in one transaction off the event loop, and only
then hands the messages to the listeners (the WebSocket hub). Write-before-deliver is what makes resume exact: a
client that reads the table after registering for live messages can never miss or repeat a message. A batch the
database refuses is retried (backing off to 2 s) until it is stored; meanwhile nothing is delivered, the status
listeners are told (the desks show it), and the bus subscription holds what comes next.

Several desk API instances (a cluster) share one log: one instance writes it (elected: leadership.py), reading
the bus's kept events (events.replay) from the position it stores in the same transaction (bus_position.py);
the others follow: they read the rows stored after the last one they delivered (by id, every 50 ms) and hand
those to their own listeners, keeping their counters and open calls from them. A follower that becomes the writer
claims the stored position first (from then on the last writer can store nothing), then delivers what is stored,
reloads the state from the database and reads on from that position.

`desktop_epoch` names the database the numbering lives in: a new or replaced database gets a new epoch, and the
in-memory counters never go down, so a connected desk never sees a seq go backwards.

A call offered to A and then to B (A's phone rang out) gives A's stream a `call.ended` with reason `not_answered`,
so A's desk clears; events of calls with no operator (IVR only) go to the stream "" that no desk reads.

Counters live in `desktop_streams`, not in `max(seq)` of the events, so pruning old events never reuses a seq.
Open calls are kept in `desktop_calls`, so a restarted process still knows whose stream a running call feeds.
Retention (checked at start and every 10 minutes): events and call rows older than `retention_days` (default 7),
and `transcript.partial` events older than `partial_retention_s` (default 1 h: finals supersede them, and they are
most of the volume). The log is a replay buffer for desktops, not the call archive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from agent_desktop_api.auth import database_errors
from agent_desktop_api.bus_position import WriterReplaced, claim_position, move_position, read_position
from agent_desktop_api.call_info import CALL_FACT_TYPES, CALL_FACTS, CallInfo, operator_named
from agent_desktop_api.event_sources import BusSource, EventSource, StreamSource
from agent_desktop_api.event_tables import TABLES, desktop_calls, desktop_epoch, desktop_events, desktop_streams, upsert
from agent_desktop_api.settings import DesktopSettings
from config.database import as_utc, create_tables
from events.bus import CallEvent, EventBus, Subscription
from events.contract import (
    CallAnswered,
    CallEnded,
    CallOffered,
    CallTransferred,
)
from events.replay import EventStream, StreamPosition
from events.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

UNROUTED = ""  # stream of events whose call has no operator (yet): stored, served to nobody
ENDED_CALLS_KEPT = 10_000  # a few hours of the hotline's calls
FOLLOW_INTERVAL_S = 0.05  # how often an instance that is not the writer reads what the writer stored
TAIL_PAGE = 2000


def desktop_settings(settings: object) -> DesktopSettings:
    value = getattr(settings, "desktop", None)
    return value if isinstance(value, DesktopSettings) else DesktopSettings()


@dataclass(frozen=True)
class Message:
    operator_id: str
    seq: int
    call_id: str
    type: str
    ts: datetime
    text: str  # serialised once, sent as is to every socket of the stream


@dataclass
class _Batch:
    messages: list[Message] = field(default_factory=list)
    calls: dict[str, CallInfo] = field(default_factory=dict)
    streams: dict[str, int] = field(default_factory=dict)
    position: StreamPosition | None = None  # read from the bus's stream: where the writer is after this batch


Listener = Callable[[Sequence[Message]], None]
StatusListener = Callable[[bool, str | None], None]  # stored (True) or waiting for the database, and why
RETRY_MAX_S = 2.0


def _problem(exc: sa.exc.SQLAlchemyError) -> str:
    """What the database said, as the desks are told it (the driver's error rather than SQLAlchemy's wrapper)."""
    cause = getattr(exc, "orig", None) or exc
    return f"{type(cause).__name__}: {cause}"


class EventLog:
    def __init__(
        self,
        engine: Engine,
        settings: DesktopSettings | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.settings = settings or DesktopSettings()
        self.clock = clock
        self.listeners: list[Listener] = []
        self.status_listeners: list[StatusListener] = []
        self.storing = True  # False while a batch waits for the database: nothing is delivered until it is stored
        self.problem: str | None = None
        self.epoch = ""  # names this database's numbering: a desk that saw another epoch resynchronises (below)
        self._last_seq: dict[str, int] = {}  # numbered (maybe not stored yet)
        self._stored_seq: dict[str, int] = {}  # stored and delivered
        self._open: dict[str, CallInfo] = {}  # calls not ended yet
        # Who had each recently ended call: an assistant's answer about the last words of a call may come after
        # `call.ended` (it reads the bus on its own) and still belongs on that operator's desk.
        self._ended: OrderedDict[str, str | None] = OrderedDict()
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._loaded = False
        self._load_lock = asyncio.Lock()
        self._bus: EventBus | None = None
        self._offered_before = 0
        self._handled = 0  # events taken off the subscription and ingested (or dropped by the bus)
        # Its own writer thread: stores never queue behind other work in the default pool, and stay in order.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="desktop-log")
        self._stored_streams: set[str] = set()  # operators with a desktop_streams row
        # Several desk API instances share one log: one writes (reading the bus's stream from `_position`), the
        # others follow (deliver what it stored, by row id). One instance alone: "writer" of the in-process bus.
        self.mode = "idle"  # writer | follower | replaced (another instance writes now) | idle
        self.replaced_listeners: list[Callable[[], None]] = []
        self._position: StreamPosition | None = None  # the stored position in the bus's stream
        self._writer_id: str | None = None  # drawn at each takeover: a replaced writer's stores are refused
        self._tail_id: int | None = None  # the last row delivered (following), or written (writing the stream)
        self._tail_lock = asyncio.Lock()
        self.prune_every_s = 600.0
        self.epoch = self._ensure_epoch()  # creates the tables too

    # ---- lifecycle ----

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def following(self) -> bool:
        """Following, from a known row on: every row stored from now on reaches our listeners."""
        return self.mode == "follower" and self._tail_id is not None

    def start(self, bus: EventBus) -> None:
        """The only writer, reading the in-process bus: subscribe now (so nothing published from here on is
        missed) and consume in a task of the running loop."""
        if self._task is not None:
            return
        self._bus, self._offered_before, self._handled = bus, bus.published, 0  # later publishes are offered to us
        self._subscription = bus.subscribe(maxsize=100_000)
        self.mode = "writer"
        source = BusSource(self._subscription)
        self._task = asyncio.get_running_loop().create_task(self._run(source), name="desktop-event-log")

    async def lead(self, stream: EventStream) -> None:
        """Become the writer of a log several desk API instances share (agent_desktop_api.leadership chose this
        one): claim the position stored with the log, deliver what the last writer stored, take the state from
        the database, and read the bus's stream from that position. WriterReplaced: another instance stored or
        claimed since we read the position."""
        await self._cancel_task()
        stored = await asyncio.to_thread(read_position, self.engine)
        start = await stream.start_after(stored)
        writer = uuid.uuid4().hex
        await asyncio.to_thread(claim_position, self.engine, writer, stored, start)
        # Claimed: the last writer stores nothing more (its next store fails its check), and a store of its that
        # was still open when we claimed had to commit before the claim could. So a tail read now ends with its
        # last row: every row it stored reaches our sockets, and the state loaded next includes them.
        if self.mode == "follower":
            await self._tail()
        self._loaded = False
        await self.load()
        self._position, self._writer_id = start, writer
        self.mode = "writer"
        log.info("desktop.writing", stream=start.stream, after_seq=start.seq)
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(StreamSource(stream, start)), name="desktop-event-log")

    async def follow(self) -> None:
        """Deliver what another instance's writer stores: tail the events table from where we are (a desk API
        instance of several, not the writer now)."""
        await self._cancel_task()
        if self.mode == "idle":
            self._tail_id = None  # from the newest row on (what came before, a desk replays from the table)
        self._last_seq = dict(self._stored_seq)  # numbered but not stored: another writer numbers them now
        self.mode = "follower"
        self._task = asyncio.get_running_loop().create_task(self._follow(), name="desktop-event-log-follow")

    async def caught_up(self) -> None:
        """The stored state before a desk is answered: loaded (a desk may connect while a starting writer still
        reads it; its counters would say 0), and for a follower, what is stored by now (a desk resuming here saw
        it elsewhere). DatabaseUnavailable: the database cannot be read now (the desk retries)."""
        with database_errors():
            await self.load()
            if self.mode == "follower":
                await self._tail()

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Store what was published before this call (up to `drain_timeout`), then stop consuming. (Reading the
        bus's stream, nothing needs draining: the next writer goes on from the stored position.)"""
        if self._subscription is not None:
            target = self._offered()
            self._subscription.close()
            with contextlib.suppress(TimeoutError):
                await self.settled(drain_timeout, target)
            self._subscription = None
        await self._cancel_task()
        self.mode = "idle"

    async def _cancel_task(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    def _offered(self) -> int:
        return self._bus.published - self._offered_before if self._bus is not None else 0

    async def settled(self, timeout: float = 5.0, target: int | None = None) -> None:
        """Wait until every event published so far (or the first `target` since start) is stored and delivered."""
        goal = self._offered() if target is None else target
        async with asyncio.timeout(timeout):
            while self.running and self._handled < goal:  # noqa: ASYNC110  (the bus has no "drained" signal)
                await asyncio.sleep(0.002)

    async def _run(self, source: EventSource) -> None:
        await self._load_retrying()
        await self._prune()
        next_prune = time.monotonic() + self.prune_every_s
        while True:
            if time.monotonic() >= next_prune:  # checked between batches too: a busy line never times out
                await self._prune()
                next_prune = time.monotonic() + self.prune_every_s
            pulled = await source.pull(max(0.0, next_prune - time.monotonic()))
            if pulled is None:
                continue
            if pulled.dropped:
                log.error("desktop.events_dropped", count=pulled.dropped)
            try:
                await self.ingest(pulled.events, pulled.position)
            except WriterReplaced as exc:
                log.warning("desktop.writer_replaced", detail=str(exc))
                self.mode = "replaced"
                for listener in self.replaced_listeners:
                    listener()
                return
            except Exception:  # keep consuming: one bad batch must not silence every desktop
                log.exception("desktop.ingest_failed", events=len(pulled.events))
            finally:
                self._handled += len(pulled.events) + pulled.dropped

    async def _load_retrying(self) -> None:
        """The stored state, however long the database is away at start (events wait on the subscription; desks
        are told the stream waits for the database, as when a store fails)."""
        delay = 0.1
        attempt = 0
        while True:
            try:
                await self.load()
                break
            except sa.exc.SQLAlchemyError as exc:
                attempt += 1
                delay = await self._wait_for_database(exc, attempt, delay, "desktop.load_retry")
        self._set_storing(True, None)

    # ---- following another writer ----

    async def _follow(self) -> None:
        delay = FOLLOW_INTERVAL_S
        while True:
            try:  # the database may be away at first too: the state and the start row are read here
                await self.load()
                if self._tail_id is None:
                    loop = asyncio.get_running_loop()
                    self._tail_id = await loop.run_in_executor(self._writer, self._max_id)
                await self._tail()
            except sa.exc.SQLAlchemyError as exc:
                self._set_storing(False, _problem(exc))
                delay = min(RETRY_MAX_S, delay * 2)
            else:
                self._set_storing(True, None)
                delay = FOLLOW_INTERVAL_S
            await asyncio.sleep(delay)

    async def _tail(self) -> None:
        """Deliver the rows stored after the last one we delivered, in id order (one writer at a time stores,
        and its row lock on the position makes ids grow in commit order: see bus_position)."""
        async with self._tail_lock:
            loop = asyncio.get_running_loop()
            while self._tail_id is not None:  # None: following has not found its first row yet
                rows, calls = await loop.run_in_executor(self._writer, self._read_tail, self._tail_id)
                if not rows:
                    return
                self._apply_tail(rows, calls)
                if len(rows) < TAIL_PAGE:
                    return

    def _apply_tail(self, rows: list[Any], calls: list[CallInfo]) -> None:
        messages = [
            Message(row.operator_id, int(row.seq), row.call_id, row.type, as_utc(row.ts), row.body) for row in rows
        ]
        for message in messages:
            op = message.operator_id
            self._stored_seq[op] = max(message.seq, self._stored_seq.get(op, 0))
            self._last_seq[op] = max(message.seq, self._last_seq.get(op, 0))
        for info in calls:
            if info.ended_at is None:
                self._open[info.call_id] = info
            else:
                self._open.pop(info.call_id, None)
                self._remember_ended(info.call_id, info.operator_id)
        self._tail_id = int(rows[-1].id)
        for listener in self.listeners:
            listener(messages)

    def _read_tail(self, after: int) -> tuple[list[Any], list[CallInfo]]:
        events = desktop_events.c
        query = sa.select(desktop_events).where(events.id > after).order_by(events.id).limit(TAIL_PAGE)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
            changed = sorted({row.call_id for row in rows if row.type in CALL_FACT_TYPES})
            if not changed:
                return rows, []
            calls = conn.execute(sa.select(desktop_calls).where(desktop_calls.c.call_id.in_(changed)))
            return rows, [CallInfo.from_row(row) for row in calls]

    def _max_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(desktop_events.c.id), 0))).scalar_one())

    def _remember_ended(self, call_id: str, operator_id: str | None) -> None:
        self._ended[call_id] = operator_id
        if len(self._ended) > ENDED_CALLS_KEPT:
            self._ended.popitem(last=False)

    # ---- ingest ----

    async def ingest(self, events: Iterable[CallEvent], position: StreamPosition | None = None) -> list[Message]:
        """Number, store, then deliver. Called only by the consumer task (one at a time keeps seq order).
        `position`: where the batch ends in the bus's stream (stored with it)."""
        await self.load()
        batch = _Batch(position=position)
        for event in events:
            self._route(event, batch)
        if batch.messages:
            await self._store(batch)
            for message in batch.messages:
                self._stored_seq[message.operator_id] = message.seq
            for listener in self.listeners:
                listener(batch.messages)
        return batch.messages

    async def _store(self, batch: _Batch) -> None:
        """Write the batch, retrying until the database takes it. Delivering only what is stored keeps every
        message a desk saw replayable; meanwhile the desks are told that the stream waits for the database, and
        new events queue on the bus subscription (bounded: beyond it they are dropped and logged)."""
        delay = 0.1
        attempt = 0
        while True:
            try:
                await asyncio.get_running_loop().run_in_executor(self._writer, self._write, batch)
                break
            except WriterReplaced:
                self._last_seq = dict(self._stored_seq)
                raise
            except sa.exc.IntegrityError:  # seq numbers taken in a database swapped in under us: cannot store
                log.exception("desktop.write_conflict", messages=len(batch.messages))
                break
            except sa.exc.SQLAlchemyError as exc:
                attempt += 1
                self._stored_streams.clear()  # the database may be a new one: upsert the counters
                delay = await self._wait_for_database(
                    exc, attempt, delay, "desktop.write_retry", messages=len(batch.messages)
                )
        self._set_storing(True, None)

    async def _wait_for_database(
        self, exc: sa.exc.SQLAlchemyError, attempt: int, delay: float, event: str, **fields: object
    ) -> float:
        """After a failed read or store: tell the desks from the second failure on (one quick retry covers
        SQLite's busy timeouts), log, wait `delay`; the next delay."""
        problem = _problem(exc)
        if attempt == 2:
            self._set_storing(False, problem)
        log.warning(event, attempt=attempt, error=problem, **fields)
        await asyncio.sleep(delay)
        return min(RETRY_MAX_S, delay * 2)

    def _set_storing(self, storing: bool, problem: str | None) -> None:
        if storing == self.storing:
            return
        self.storing, self.problem = storing, problem
        (log.info if storing else log.error)("desktop.storing" if storing else "desktop.not_storing", problem=problem)
        for listener in self.status_listeners:
            listener(storing, problem)

    def _route(self, event: CallEvent, batch: _Batch) -> None:
        body = event.body
        named = operator_named(body)
        info = self._open.get(event.call_id)
        current = info.operator_id if info is not None else self._ended.get(event.call_id)
        is_call_fact = isinstance(body, CALL_FACTS)
        if is_call_fact and info is None:
            info = self._open[event.call_id] = CallInfo(event.call_id)
        targets: list[str] = []
        if isinstance(body, CallOffered | CallAnswered) and named is not None:
            if current is not None and current != named:
                # Rang out on `current` and went to someone else: clear that desktop's card.
                rang_out = {"caller_number": body.caller_number, "language": body.language, "reason": "not_answered"}
                self._append(batch, current, event, rang_out, type_="call.ended")
            targets = [named]
        elif isinstance(body, CallTransferred):
            before = body.from_operator or current
            after = named or current
            targets = [op for op in dict.fromkeys((before, after)) if op is not None]
            named = after
        else:
            target = current or named
            targets = [target] if target is not None else []
        if info is not None and is_call_fact:
            info.absorb(event)
            if named is not None:
                info.operator_id = named
            batch.calls[event.call_id] = info
            if isinstance(body, CallEnded):
                del self._open[event.call_id]
                self._remember_ended(event.call_id, info.operator_id)
        for operator_id in targets or [UNROUTED]:
            self._append(batch, operator_id, event, event.data)

    def _append(
        self, batch: _Batch, operator_id: str, event: CallEvent, data: dict[str, Any], type_: str | None = None
    ) -> None:
        seq = self._last_seq.get(operator_id, 0) + 1
        self._last_seq[operator_id] = batch.streams[operator_id] = seq
        body: dict[str, Any] = {
            "type": type_ or event.type,
            "call_id": event.call_id,
            "seq": seq,
            "ts": event.ts.astimezone(UTC).isoformat(),
        }
        body.update((key, value) for key, value in data.items() if key not in body)
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
        batch.messages.append(Message(operator_id, seq, event.call_id, body["type"], event.ts, text))

    # ---- storage (worker threads) ----

    async def load(self) -> None:
        """Stream counters and open calls from the database (once; applied on the loop, read in a thread). One
        read at a time: a second one begun before a store could bring back a call that store just ended."""
        async with self._load_lock:
            if not self._loaded:
                await self._load()

    async def _load(self) -> None:
        streams, calls, ended = await asyncio.to_thread(self._read_state)
        for operator_id, last in streams.items():
            self._last_seq[operator_id] = max(last, self._last_seq.get(operator_id, 0))
            self._stored_seq[operator_id] = max(last, self._stored_seq.get(operator_id, 0))
        self._stored_streams.update(streams)
        for info in calls:  # the database's view wins: another instance may have written them since we looked
            self._open[info.call_id] = info
        for info in ended:
            self._open.pop(info.call_id, None)
            self._remember_ended(info.call_id, info.operator_id)
        self._loaded = True

    def _read_state(self) -> tuple[dict[str, int], list[CallInfo], list[CallInfo]]:
        """Stream counters, open calls, and the most recently ended calls (oldest first)."""
        self.epoch = self._ensure_epoch()
        calls = desktop_calls.c
        with self.engine.connect() as conn:
            streams = {row.operator_id: int(row.last_seq) for row in conn.execute(sa.select(desktop_streams))}
            rows = conn.execute(sa.select(desktop_calls).where(calls.ended_at.is_(None)))
            open_calls = [CallInfo.from_row(row) for row in rows]
            recent = sa.select(desktop_calls).where(calls.ended_at.is_not(None))
            ended = conn.execute(recent.order_by(calls.ended_at.desc()).limit(ENDED_CALLS_KEPT))
            return streams, open_calls, [CallInfo.from_row(row) for row in reversed(list(ended))]

    def _ensure_epoch(self) -> str:
        """The database's epoch, made (with the tables) when it has none: a new or replaced database."""
        create_tables(self.engine, *TABLES)
        with self.engine.begin() as conn:
            epoch = conn.execute(sa.select(desktop_epoch.c.epoch).where(desktop_epoch.c.id == 1)).scalar()
            if epoch is None:
                epoch = uuid.uuid4().hex
                conn.execute(sa.insert(desktop_epoch).values(id=1, epoch=epoch, created_at=self.clock()))
                log.info("desktop.new_epoch", epoch=epoch)  # a new or replaced database
        return str(epoch)

    def _write(self, batch: _Batch) -> None:
        now = self.clock()
        known_ids = self._stored_streams
        if not known_ids:  # first write, or after a failure: the tables and the epoch may be gone
            self.epoch = self._ensure_epoch()
        with self.engine.begin() as conn:
            if batch.position is not None:  # first: its row lock orders writers (see bus_position)
                assert self._position is not None and self._writer_id is not None
                move_position(conn, self._writer_id, self._position, batch.position)
            conn.execute(
                sa.insert(desktop_events),
                [
                    {
                        "operator_id": m.operator_id,
                        "seq": m.seq,
                        "call_id": m.call_id,
                        "type": m.type,
                        "ts": m.ts,
                        "body": m.text,
                    }
                    for m in batch.messages
                ],
            )
            # executemany, not one statement per stream: a batch may touch hundreds of operators
            known = [{"op": op, "last": last} for op, last in batch.streams.items() if op in known_ids]
            new = [op for op in batch.streams if op not in known_ids]
            if known:
                conn.execute(
                    sa.update(desktop_streams)
                    .where(desktop_streams.c.operator_id == sa.bindparam("op"))
                    .values(last_seq=sa.bindparam("last")),
                    known,
                )
            for op in new:  # rare (once per operator and process): upsert, the row may exist already
                upsert(conn, desktop_streams, desktop_streams.c.operator_id, op, {"last_seq": batch.streams[op]})
            for info in batch.calls.values():
                upsert(conn, desktop_calls, desktop_calls.c.call_id, info.call_id, info.row(now))
            if batch.position is not None:  # ours: nobody else inserts while we hold the position's row lock
                last_id = conn.execute(sa.select(sa.func.max(desktop_events.c.id))).scalar_one()
        known_ids.update(batch.streams)  # committed: these rows exist now
        if batch.position is not None:
            self._position, self._tail_id = batch.position, int(last_id)

    async def _prune(self) -> None:
        now = self.clock()
        cutoff = now - timedelta(days=self.settings.retention_days)
        partial_cutoff = now - timedelta(seconds=self.settings.partial_retention_s)
        try:
            gone = await asyncio.to_thread(self.prune, cutoff, partial_cutoff)
        except sa.exc.SQLAlchemyError:
            log.exception("desktop.prune_failed")
            return
        for call_id, info in list(self._open.items()):  # calls whose end we never saw (a crash) age out too
            if info.offered_at is not None and info.offered_at < cutoff:
                del self._open[call_id]
        if gone:
            log.info("desktop.pruned", events=gone, older_than=cutoff.isoformat())

    def prune(self, cutoff: datetime, partial_cutoff: datetime | None = None) -> int:
        """Delete events and call rows older than `cutoff`, and partial transcripts older than `partial_cutoff`
        (blocking); returns the number of events deleted."""
        events = desktop_events.c
        with self.engine.begin() as conn:
            gone = conn.execute(sa.delete(desktop_events).where(events.ts < cutoff)).rowcount
            if partial_cutoff is not None:
                partials = sa.delete(desktop_events).where(
                    events.type == "transcript.partial", events.ts < partial_cutoff
                )
                gone += conn.execute(partials).rowcount
            conn.execute(sa.delete(desktop_calls).where(desktop_calls.c.updated_at < cutoff))
        return int(gone)

    # ---- reads ----

    def last_seq(self, operator_id: str) -> int:
        """The newest seq of the stream that is stored (and so delivered and replayable)."""
        return self._stored_seq.get(operator_id, 0)

    def read(self, operator_id: str, after: int, limit: int = 500) -> list[tuple[int, str]]:
        """Stored messages of a stream with seq > after, in order (blocking: call from a thread)."""
        query = (
            sa.select(desktop_events.c.seq, desktop_events.c.body)
            .where(desktop_events.c.operator_id == operator_id, desktop_events.c.seq > after)
            .order_by(desktop_events.c.seq)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [(int(row.seq), str(row.body)) for row in conn.execute(query)]

    def open_calls(self) -> list[CallInfo]:
        return list(self._open.values())

    def open_call(self, call_id: str) -> CallInfo | None:
        return self._open.get(call_id)

    def current_call(self, operator_id: str) -> CallInfo | None:
        mine = [info for info in self._open.values() if info.operator_id == operator_id]
        return max(mine, key=lambda info: info.offered_at or datetime.min.replace(tzinfo=UTC), default=None)

    def call(self, call_id: str) -> CallInfo | None:
        if call_id in self._open:
            return self._open[call_id]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(desktop_calls).where(desktop_calls.c.call_id == call_id)).first()
        return CallInfo.from_row(row) if row is not None else None

    def known(self, call_id: str) -> bool:
        if call_id in self._open:
            return True
        with self.engine.connect() as conn:
            hit = conn.execute(sa.select(desktop_events.c.id).where(desktop_events.c.call_id == call_id).limit(1))
            return hit.first() is not None

    def handled_by(self, call_id: str, operator_id: str) -> bool:
        """The operator's stream carried this call (offered, answered, transferred to or from them)."""
        info = self._open.get(call_id)
        if info is not None and info.operator_id == operator_id:
            return True
        query = sa.select(desktop_events.c.id).where(
            desktop_events.c.call_id == call_id, desktop_events.c.operator_id == operator_id
        )
        with self.engine.connect() as conn:
            return conn.execute(query.limit(1)).first() is not None

    def finals(self, call_id: str) -> list[dict[str, Any]]:
        """Final transcript messages of a call in the order they were sent, each segment once."""
        query = (
            sa.select(desktop_events.c.body)
            .where(desktop_events.c.call_id == call_id, desktop_events.c.type == "transcript.final")
            .order_by(desktop_events.c.id)
        )
        seen: set[object] = set()
        segments: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            for (body,) in conn.execute(query):
                message = json.loads(body)
                key = message.get("segment_id")
                if key is not None and key in seen:
                    continue  # the same final in two streams (e.g. around a transfer)
                seen.add(key)
                segments.append(message)
        return segments

    def latest(self, call_id: str, type_: str) -> dict[str, Any] | None:
        """The last stored message of `type_` for the call (e.g. its newest ticket draft)."""
        query = (
            sa.select(desktop_events.c.body)
            .where(desktop_events.c.call_id == call_id, desktop_events.c.type == type_)
            .order_by(desktop_events.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            body = conn.execute(query).scalar_one_or_none()
        return json.loads(body) if body is not None else None
