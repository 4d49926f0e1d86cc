"""The ARI events WebSocket, kept connected for as long as the gateway runs.

Consume events by iterating the stream from one task::

    stream = AriEventStream(base_url, user, password, "hotline", on_connected=resync)
    stream.start()                              # connects in the background, reconnects on every drop
    await stream.wait_connected(10)             # before any call may arrive (else "Stasis app doesn't exist")
    async for event in stream:                  # typed events (voice.ari.models), in Asterisk's order
        ...

``on_connected(is_reconnect)`` is awaited *inside the iteration*, in the consumer's task: after every event of
the previous connection has been handed out and before the first event of the new one. Events that arrive
meanwhile wait their turn, so the gateway can resynchronise (list channels and bridges) without locks. An
exception from the hook is logged and the stream goes on.

Drops are healed forever (exponential backoff with jitter between ``reconnect_initial_s`` and
``reconnect_max_s``) until :meth:`AriEventStream.close`. Asterisk unreachable at start is logged and
retried. Wrong credentials (401/403 at the handshake) end the stream at once:
:meth:`~AriEventStream.wait_connected` and the iteration raise :class:`~voice.ari.errors.AriAuthError`.
A malformed event is logged with its text and skipped. Liveness: websockets' own ping every
``ping_interval_s``; no pong within ``ping_timeout_s`` counts as a drop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode, urlsplit, urlunsplit

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .errors import AriAuthError, AriError, AriTimeout, MalformedEvent
from .models import AriEvent, parse_event_text
from .rest import normalize_base_url

__all__ = ["AriEventStream", "OnConnected", "events_url"]

log = structlog.get_logger(__name__)

OnConnected = Callable[[bool], Awaitable[None]]
"""``async def on_connected(is_reconnect: bool) -> None``."""

_MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024
_LOGGED_TEXT_CHARS: Final = 2000


def events_url(base_url: str, app: str, subscribe_all: bool = False) -> str:
    """``http://h:8088/ari`` → ``ws://h:8088/ari/events?app=APP&subscribeAll=false`` (https → wss)."""
    parts = urlsplit(normalize_base_url(base_url))
    scheme = "wss" if parts.scheme == "https" else "ws"
    query = urlencode({"app": app, "subscribeAll": "true" if subscribe_all else "false"})
    return urlunsplit((scheme, parts.netloc, parts.path + "/events", query, ""))


@dataclass(frozen=True, slots=True)
class _Connected:
    is_reconnect: bool


@dataclass(frozen=True, slots=True)
class _Failed:
    error: AriError


class _Closed:
    pass


_CLOSED: Final = _Closed()
_Item = AriEvent | _Connected | _Failed | _Closed


class AriEventStream:
    """Events of one Stasis application, delivered in order by ``async for`` (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        app: str,
        *,
        on_connected: OnConnected | None = None,
        ping_interval_s: float = 5.0,
        ping_timeout_s: float | None = None,
        reconnect_initial_s: float = 0.2,
        reconnect_max_s: float = 5.0,
        connect_timeout_s: float = 5.0,
        subscribe_all: bool = False,
        jitter: float = 0.3,
    ) -> None:
        if reconnect_initial_s <= 0 or reconnect_max_s < reconnect_initial_s:
            raise ValueError("need 0 < reconnect_initial_s <= reconnect_max_s")
        self.app = app
        self.url = events_url(base_url, app, subscribe_all)
        self.on_connected = on_connected
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s if ping_timeout_s is not None else ping_interval_s
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = reconnect_max_s
        self.connect_timeout_s = connect_timeout_s
        self.jitter = min(max(jitter, 0.0), 1.0)
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {token}"}

        # Counters (read them for metrics; they only grow).
        self.connects = 0
        """Successful handshakes, the first one included."""
        self.reconnects = 0
        """Successful handshakes after the first one."""
        self.connect_failures = 0
        """Connection attempts that failed (refused, timed out, bad status)."""
        self.disconnects = 0
        """Established connections that were lost (not counting :meth:`close`)."""
        self.events_received = 0
        self.malformed_events = 0
        self.last_error: str | None = None
        self.connected_since: float | None = None
        """``time.monotonic()`` of the current connection's handshake, None while disconnected."""
        self.failure: AriError | None = None
        """Set when the stream gave up for good (wrong credentials)."""

        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None
        self._closing = False

    # ----------------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start connecting in the background (idempotent). Needs a running event loop."""
        if self._closing:
            raise AriError("event stream is closed")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ari-events-{self.app}")

    async def __aenter__(self) -> AriEventStream:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop for good: close the WebSocket, end the iteration (events not yet consumed are dropped)."""
        if self._closing:
            if self._task is not None:
                await asyncio.gather(self._task, return_exceptions=True)
            return
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._connected.clear()
        self.connected_since = None
        self._queue.put_nowait(_CLOSED)
        self._task = task  # kept so that wait_connected sees it done

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def closed(self) -> bool:
        return self._closing

    @property
    def backlog(self) -> int:
        """Events received and not yet consumed."""
        return self._queue.qsize()

    def stats(self) -> dict[str, int]:
        """Counters and gauges for metrics export (``connected`` is 0 or 1)."""
        return {
            "connected": int(self.connected),
            "connects": self.connects,
            "reconnects": self.reconnects,
            "connect_failures": self.connect_failures,
            "disconnects": self.disconnects,
            "events_received": self.events_received,
            "malformed_events": self.malformed_events,
            "backlog": self.backlog,
        }

    async def wait_connected(self, timeout: float) -> None:
        """Return once the WebSocket is up (starting the stream if needed).

        Raises :class:`AriAuthError` on wrong credentials, :class:`AriTimeout` when not connected in
        ``timeout`` seconds (the stream keeps trying), :class:`AriError` when the stream was closed.
        """
        self.start()
        assert self._task is not None
        if not self._connected.is_set() and not self._task.done():
            waiter = asyncio.ensure_future(self._connected.wait())
            try:
                await asyncio.wait({waiter, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
        if self._connected.is_set():
            return
        if self.failure is not None:
            raise self.failure
        if self._task.done():
            raise AriError("event stream is closed")
        detail = f": {self.last_error}" if self.last_error else ""
        raise AriTimeout(f"events WebSocket {self.url} not connected within {timeout:g} s{detail}")

    # --------------------------------------------------------------------------------------- consumption

    def __aiter__(self) -> AriEventStream:
        return self

    async def __anext__(self) -> AriEvent:
        if self._task is None and not self._closing:
            self.start()
        while True:
            if self._closing:
                raise StopAsyncIteration
            item = await self._queue.get()
            if isinstance(item, AriEvent):
                return item
            if isinstance(item, _Connected):
                await self._call_on_connected(item.is_reconnect)
                continue
            if isinstance(item, _Failed):
                self._queue.put_nowait(item)  # every later iteration fails the same way
                raise item.error
            self._queue.put_nowait(_CLOSED)
            raise StopAsyncIteration

    async def _call_on_connected(self, is_reconnect: bool) -> None:
        hook = self.on_connected
        if hook is None:
            return
        try:
            await hook(is_reconnect)
        except Exception:
            log.exception("ari.events.on_connected_failed", app=self.app, is_reconnect=is_reconnect)

    # ------------------------------------------------------------------------------------------ internals

    def _backoff(self, attempt: int) -> float:
        base = min(self.reconnect_max_s, self.reconnect_initial_s * (2.0 ** min(attempt, 30)))
        delay = base * (1.0 - self.jitter * random.random())
        return max(self.reconnect_initial_s, delay)

    async def _connect(self) -> ClientConnection:
        return await connect(
            self.url,
            additional_headers=self._headers,
            open_timeout=self.connect_timeout_s,
            ping_interval=self.ping_interval_s,
            ping_timeout=self.ping_timeout_s,
            close_timeout=0.5,
            max_size=_MAX_MESSAGE_BYTES,
            max_queue=256,
            compression=None,
            proxy=None,
            user_agent_header="hotline-ari",
        )

    async def _run(self) -> None:
        attempt = 0  # backoff step; back to 0 only after a connection that stayed up (no fast flapping)
        failures_in_row = 0
        ever_connected = False
        stable_after_s = max(self.reconnect_max_s, 5.0)
        while not self._closing:
            try:
                ws = await self._connect()
            except InvalidStatus as exc:
                status = exc.response.status_code
                detail = _handshake_detail(exc.response.body)
                if status in (401, 403):
                    self._fail(
                        AriAuthError(
                            f"{detail or 'refused'}: wrong ARI user name or password",
                            status=status,
                            method="GET",
                            path="/events",
                        )
                    )
                    return
                failures_in_row += 1
                self._note_failure(f"HTTP {status} at the handshake {detail}".strip(), failures_in_row)
            except Exception as exc:  # refused, DNS, timeout, bad handshake: all retried
                failures_in_row += 1
                self._note_failure(f"{type(exc).__name__}: {exc}", failures_in_row)
            else:
                failures_in_row = 0
                opened = time.monotonic()
                is_reconnect = ever_connected
                ever_connected = True
                await self._serve(ws, is_reconnect)
                if self._closing:
                    return
                if time.monotonic() - opened >= stable_after_s:
                    attempt = 0
            delay = self._backoff(attempt)
            attempt += 1
            await asyncio.sleep(delay)

    async def _serve(self, ws: ClientConnection, is_reconnect: bool) -> None:
        self._ws = ws
        self.connects += 1
        if is_reconnect:
            self.reconnects += 1
        self.connected_since = time.monotonic()
        self._connected.set()
        self._queue.put_nowait(_Connected(is_reconnect))
        log.info("ari.events.connected", url=self.url, is_reconnect=is_reconnect, reconnects=self.reconnects)
        try:
            async for message in ws:
                self._deliver(message)
            reason = f"closed by Asterisk ({ws.close_code} {ws.close_reason or ''})".strip()
        except ConnectionClosed as exc:
            reason = f"connection lost: {exc}"
        except Exception as exc:  # never let a surprise end the stream
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            self._connected.clear()
            self.connected_since = None
            self._ws = None
            with contextlib.suppress(Exception):
                await ws.close()
        if not self._closing:
            self.disconnects += 1
            self.last_error = reason
            log.warning("ari.events.disconnected", url=self.url, reason=reason)

    def _deliver(self, message: str | bytes) -> None:
        try:
            event = parse_event_text(message)
        except MalformedEvent as exc:
            self.malformed_events += 1
            log.warning("ari.events.malformed", error=exc.message, text=exc.text[:_LOGGED_TEXT_CHARS])
            return
        self.events_received += 1
        self._queue.put_nowait(event)

    def _note_failure(self, reason: str, failures_in_row: int) -> None:
        self.connect_failures += 1
        self.last_error = reason
        # Every failure while it is fresh, then one in ten: an Asterisk down for hours must not flood the log.
        log_method = log.warning if failures_in_row <= 3 or failures_in_row % 10 == 0 else log.debug
        log_method("ari.events.connect_failed", url=self.url, attempt=failures_in_row, error=reason)

    def _fail(self, error: AriError) -> None:
        self.failure = error
        self.last_error = str(error)
        log.error("ari.events.auth_failed", url=self.url, error=str(error))
        self._queue.put_nowait(_Failed(error))


def _handshake_detail(body: bytes | None) -> str:
    """Asterisk's ``{"message": ...}`` from a refused handshake, else the body text."""
    text = (body or b"").decode("utf-8", "replace").strip()
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("message", "error"):
            if isinstance(data.get(key), str) and data[key]:
                return str(data[key])
    return text[:300]
