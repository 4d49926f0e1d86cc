"""The operator's event WebSocket: `WS /api/events?token=T&after=SEQ&epoch=E`.

Each socket registers for its operator's live messages *before* it reads the stored ones with seq > after, and
never sends a seq twice or out of order (`last_sent`); since the event log stores a message before anyone gets it
live, the replay and the live tail meet without a gap or a repeat. Every socket of an operator (several tabs) gets
everything. A socket that falls `client_backlog` messages behind drops its live queue and catches up from the
database instead, so a slow browser costs memory only up to that bound.

Auth: the socket is accepted and then closed with 4401 (no, bad or expired token) or 4403 (not an operator)
before any message is sent, and closed with 4401 within a second once its login ends (logout, a new password, the
user disabled, the token expired) — a close code browsers can see, unlike a refused handshake. A malformed `after`
closes with 4400, and a database that cannot be read (so the stored seq is unknown) with 1013. Client messages:
`{"type": "resume", "after": N}` (replay from N again; several sent before the first is served count as one, the
last `after` wins), `{"type": "pong"}`; a frame over 4 KiB closes with 1009, anything else is ignored.
Every `ping_interval_s` of silence the server sends `{"type": "ping", "ts": ...}` (no seq: not part of a stream).

Durability: messages are sent only once stored. While the database refuses writes the socket gets
`{"type": "stream.status", "state": "waiting_for_database"}`, then `"live"` when the held messages are stored
and follow in order. `epoch` (from `GET /api/me`) names the database the seqs come from: a client whose epoch
differs, or whose `after` is ahead of the stored stream (a replaced or restored database), first gets
`{"type": "resync", "epoch": E, "last_seq": N}` and the stream from N on; it reloads its call over REST.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from agent_desktop_api.auth import AuthService, DatabaseUnavailable, token_hash
from agent_desktop_api.event_log import EventLog, Message

log = structlog.get_logger(__name__)

CLOSE_BAD_TOKEN, CLOSE_WRONG_ROLE, CLOSE_BAD_REQUEST = 4401, 4403, 4400
CLOSE_TOO_BIG = 1009  # RFC 6455 "message too big"
CLOSE_TRY_AGAIN = 1013  # RFC 6455 "try again later": the database cannot be read now
MAX_CLIENT_FRAME = 4096  # a client sends only {"type": "resume", "after": N} and pongs
REPLAY_PAGE = 500
MAX_SEQ = 2**63 - 1  # the database's integer range


@dataclass(frozen=True)
class _Resume:
    after: int | None  # None: from the last seq this socket sent (catching up after an overflow)


class _ClientResume:
    """Replay from the connection's `resume_after` (read when the writer gets to it)."""


class _Ping:
    pass


@dataclass(frozen=True)
class _Status:
    text: str  # a `stream.status` or `resync` message (no seq: about the stream, not part of it)


class _Revoked:
    pass


_PING = _Ping()
_REVOKED = _Revoked()
SESSION_CHECK_S = 0.5  # logout, a new password or a disabled user closes the user's sockets within this


@dataclass(eq=False)
class Connection:
    operator_id: str
    backlog: int
    token_hash: str = ""
    connected_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_sent: int = 0
    queue: asyncio.Queue[Message | _Resume | _ClientResume | _Ping | _Revoked | _Status] = field(
        default_factory=asyncio.Queue
    )
    overflows: int = 0
    last_activity: float = field(default_factory=time.monotonic)
    resume_queued: bool = False  # a client's resume is waiting in `queue`: later ones replace its `after`
    resume_after: int = 0

    def request_resume(self, after: int) -> None:
        """A client's resume: at most one waits in the queue, however many the client sends."""
        self.resume_after = after
        if not self.resume_queued:
            self.resume_queued = True
            self.queue.put_nowait(_ClientResume())

    def offer(self, message: Message) -> None:
        if self.queue.qsize() >= self.backlog:
            while not self.queue.empty():  # the database has all of it: read it from there instead
                self.queue.get_nowait()
            self.queue.put_nowait(_Resume(None))
            self.overflows += 1
        self.queue.put_nowait(message)


class StreamHub:
    """The connected desktops, by operator; the event log's listener."""

    def __init__(self, event_log: EventLog) -> None:
        self.log = event_log
        self._sockets: dict[str, set[Connection]] = {}
        self._session_checker: asyncio.Task[None] | None = None
        event_log.listeners.append(self.deliver)
        event_log.status_listeners.append(self.storing_changed)

    def status_message(self) -> _Status:
        state = "live" if self.log.storing else "waiting_for_database"
        body = {"type": "stream.status", "state": state, "ts": datetime.now(UTC).isoformat()}
        if not self.log.storing:
            body["detail"] = "the event store cannot write: new messages wait and arrive in order when it can"
        return _Status(json.dumps(body))

    def storing_changed(self, _storing: bool, _problem: str | None) -> None:
        status = self.status_message()
        for connection in self.connections():
            connection.queue.put_nowait(status)

    def watch_sessions(self, auth: AuthService) -> None:
        """Close sockets whose login ended (from this process or another: the database is the truth)."""
        if self._session_checker is None or self._session_checker.done():
            self._session_checker = asyncio.get_running_loop().create_task(self._check_sessions(auth))

    async def _check_sessions(self, auth: AuthService) -> None:
        while self._sockets:
            await asyncio.sleep(SESSION_CHECK_S)
            open_now = self.connections()
            try:
                valid = await run_in_threadpool(auth.still_valid, {c.token_hash for c in open_now})
            except DatabaseUnavailable:
                continue  # cannot tell: keep the sockets (the page is told by the stream's own status)
            for connection in open_now:
                if connection.token_hash not in valid:
                    connection.queue.put_nowait(_REVOKED)

    def deliver(self, messages: Sequence[Message]) -> None:
        for message in messages:
            for connection in self._sockets.get(message.operator_id, ()):
                connection.offer(message)

    def register(self, operator_id: str, token_hash: str = "") -> Connection:
        connection = Connection(operator_id, self.log.settings.client_backlog, token_hash)
        self._sockets.setdefault(operator_id, set()).add(connection)
        return connection

    def unregister(self, connection: Connection) -> None:
        sockets = self._sockets.get(connection.operator_id)
        if sockets is not None:
            sockets.discard(connection)
            if not sockets:
                del self._sockets[connection.operator_id]

    def connections(self) -> list[Connection]:
        return [c for sockets in self._sockets.values() for c in sockets]

    def count(self, operator_id: str) -> int:
        return len(self._sockets.get(operator_id, ()))


router = APIRouter()


def _after(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return 0
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if 0 <= value <= MAX_SEQ else None


@router.websocket("/api/events")
async def events(websocket: WebSocket) -> None:
    token = websocket.query_params.get("token", "")
    auth, hub = websocket.app.state.auth, websocket.app.state.desktop_hub
    if not isinstance(auth, AuthService) or not isinstance(hub, StreamHub):
        raise RuntimeError("build the app with create_app and mount_desktop")
    user = await run_in_threadpool(auth.authenticate, token) if token else None
    await websocket.accept()
    if user is None:
        await websocket.close(CLOSE_BAD_TOKEN, "missing, invalid or expired token")
        return
    if user.role != "operator":
        await websocket.close(CLOSE_WRONG_ROLE, "the event stream is for operators")
        return
    after = _after(websocket.query_params.get("after"))
    if after is None:
        await websocket.close(CLOSE_BAD_REQUEST, "after must be a non-negative integer")
        return
    epoch = websocket.query_params.get("epoch") or None
    connection = hub.register(user.name, token_hash(token))
    hub.watch_sessions(auth)
    try:
        await hub.log.caught_up()  # the stored counters (a follower: what another instance's writer stored by now)
    except DatabaseUnavailable as exc:
        hub.unregister(connection)
        await websocket.close(CLOSE_TRY_AGAIN, str(exc))  # the page reconnects with backoff
        return
    stored = hub.log.last_seq(user.name)
    if (epoch is not None and epoch != hub.log.epoch) or after > stored:
        # The desk numbered its messages from another database (replaced, restored, lost): it must reload what
        # it shows over REST and go on from here, instead of waiting for seqs this stream will never send.
        resync = {"type": "resync", "epoch": hub.log.epoch, "last_seq": stored, "ts": datetime.now(UTC).isoformat()}
        connection.queue.put_nowait(_Status(json.dumps(resync)))  # sent first, by the writer
        after = connection.last_sent = stored
    if not hub.log.storing:
        connection.queue.put_nowait(hub.status_message())
    connection.queue.put_nowait(_Resume(after))
    log.info("desktop.connected", operator=user.name, after=after, sockets=hub.count(user.name))
    reader = asyncio.create_task(_read(websocket, connection))
    writer = asyncio.create_task(_write(websocket, connection, hub.log))
    pinger = asyncio.create_task(_ping(connection, hub.log.settings.ping_interval_s))
    tasks = (reader, writer, pinger)
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.unregister(connection)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
                pass  # cancelled above, or the client went away mid-send
            except Exception:  # e.g. the database failed during a replay: close; the client resumes
                log.exception("desktop.socket_failed", operator=user.name)
        log.info("desktop.disconnected", operator=user.name, last_sent=connection.last_sent)


async def _read(websocket: WebSocket, connection: Connection) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text") or message.get("bytes") or "null"
        if len(raw) > MAX_CLIENT_FRAME:
            await websocket.close(CLOSE_TOO_BIG, f"client messages are at most {MAX_CLIENT_FRAME} bytes")
            return
        try:
            request = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to parse: ignored like any junk
            continue
        if isinstance(request, dict) and request.get("type") == "resume":
            after = request.get("after")
            if isinstance(after, int) and not isinstance(after, bool) and 0 <= after <= MAX_SEQ:
                connection.request_resume(after)


async def _write(websocket: WebSocket, connection: Connection, event_log: EventLog) -> None:
    while True:
        item = await connection.queue.get()
        if isinstance(item, _Resume):
            await _replay(websocket, connection, event_log, item.after)
        elif isinstance(item, _ClientResume):
            connection.resume_queued = False
            await _replay(websocket, connection, event_log, connection.resume_after)
        elif isinstance(item, _Revoked):
            await websocket.close(CLOSE_BAD_TOKEN, "the session ended (logged out, new password or disabled)")
            return
        elif isinstance(item, _Status):
            await websocket.send_text(item.text)
        elif isinstance(item, _Ping):
            await websocket.send_text(json.dumps({"type": "ping", "ts": datetime.now(UTC).isoformat()}))
        elif item.seq > connection.last_sent:
            await websocket.send_text(item.text)
            connection.last_sent = item.seq
        connection.last_activity = time.monotonic()


async def _ping(connection: Connection, interval_s: float) -> None:
    """Queue a ping after `interval_s` without traffic (a timer task: cheaper than a timeout per message)."""
    while True:
        await asyncio.sleep(max(0.01, connection.last_activity + interval_s - time.monotonic()))
        if time.monotonic() - connection.last_activity >= interval_s:
            connection.queue.put_nowait(_PING)
            connection.last_activity = time.monotonic()


async def _replay(websocket: WebSocket, connection: Connection, event_log: EventLog, after: int | None) -> None:
    """Send the stored messages with seq > after; live ones already queued are skipped by seq afterwards."""
    start = connection.last_sent if after is None else after
    # A client ahead of this stream (its seq came from a database since lost) gets the stream from here on.
    highest = min(start, event_log.last_seq(connection.operator_id))
    cursor = start
    while True:
        page = await run_in_threadpool(event_log.read, connection.operator_id, cursor, REPLAY_PAGE)
        for seq, text in page:
            await websocket.send_text(text)
            cursor = highest = seq
        if len(page) < REPLAY_PAGE:
            break
    connection.last_sent = max(highest, connection.last_sent) if after is None else highest
