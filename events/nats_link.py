"""The bus across processes: one NATS connection per process, and the bridge that carries the event bus over it.

Every event published in this process goes out on `<subject>.events`; every event another process published comes
in, is checked against events.contract like a local one, and is published here with its `origin`, so it is not
sent back out. Each process still reads its own in-memory bus: the parts are the same whether they share a process
or not. NATS keeps each publisher's order; core NATS delivers to the processes connected at the time (the desk's
event log is what stores and replays), and the client reconnects by itself, buffering what is published meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from dataclasses import replace
from datetime import datetime
from typing import Any

import structlog
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.errors import Error as NatsError

from events.bus import CallEvent, EventBus, Subscription
from events.contract import InvalidEvent
from events.settings import BusSettings

log = structlog.get_logger(__name__)

MAX_EVENT_BYTES = 256 * 1024  # an address card with its candidates is a few KiB; refuse anything absurd
RECONNECT_WAIT_S = 1  # the client's types take whole seconds


class BusUnavailable(Exception):
    """The NATS server could not be reached (or refused our token) at start."""


def process_name(role: str) -> str:
    """What this process is called on the bus (and in the NATS server's connection list)."""
    return f"hotline-{role}@{socket.gethostname()}:{os.getpid()}"


class NatsLink:
    """This process's NATS connection: connect once, reconnect forever, close at the end."""

    def __init__(self, settings: BusSettings, name: str) -> None:
        if settings.url is None:
            raise ValueError("bus.url is not set")
        self.settings = settings
        self.name = name
        self.nc = Nats()
        self.reconnects = 0
        self.closing = False
        self._last_error: str | None = None

    def subject(self, *parts: str) -> str:
        return ".".join((self.settings.subject, *parts))

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def connect(self) -> None:
        """Connect, or BusUnavailable within `connect_timeout_s` (the client itself would retry forever)."""
        token = self.settings.token.get_secret_value() if self.settings.token is not None else None
        connecting = self.nc.connect(
            servers=[str(self.settings.url)],
            name=self.name,
            token=token,
            connect_timeout=2,  # one attempt; the whole connect is bounded by connect_timeout_s below
            allow_reconnect=True,
            no_echo=True,  # our own events need not come back
            max_reconnect_attempts=-1,  # a bus restart must never end a call process
            reconnect_time_wait=RECONNECT_WAIT_S,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        try:
            await asyncio.wait_for(connecting, self.settings.connect_timeout_s)
        except (TimeoutError, NatsError, OSError) as exc:
            with contextlib.suppress(NatsError, asyncio.TimeoutError):
                await self.nc.close()
            why = self._last_error or str(exc) or type(exc).__name__
            raise BusUnavailable(f"cannot connect to the bus at {self.settings.url}: {why}") from exc
        log.info("bus.connected", url=self.settings.url, name=self.name)

    async def subscribed(self) -> None:
        """Return once the server has every subscription made so far (messages published after are ours).

        nats-py writes a PING at once but a SUB through its flusher task, so one flush's PING can overtake the SUB
        (seen: the first event after a start lost). The first round trip lets the flusher write the SUB; the
        second PING goes after it, and its PONG means the server has it."""
        timeout = max(1, round(self.settings.connect_timeout_s))
        for _ in range(2):
            await self.nc.flush(timeout=timeout)

    async def close(self) -> None:
        self.closing = True
        if not self.nc.is_closed:
            with contextlib.suppress(NatsError, asyncio.TimeoutError):
                await self.nc.drain()  # what we published reaches the server before we go

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = str(exc) or type(exc).__name__
        log.warning("bus.error", error=self._last_error)

    async def _on_disconnected(self) -> None:
        if not self.closing:
            log.warning("bus.disconnected", url=self.settings.url)

    async def _on_reconnected(self) -> None:
        self.reconnects += 1
        log.info("bus.reconnected", url=self.settings.url, reconnects=self.reconnects)


class BusBridge:
    """Carries one process's EventBus to the others over a NatsLink (both ways)."""

    def __init__(self, bus: EventBus, link: NatsLink) -> None:
        self.bus = bus
        self.link = link
        self.origin = link.name
        self.sent = 0
        self.received = 0
        self.refused = 0
        self._subject = link.subject("events")
        self._inbound: NatsSubscription | None = None
        self._outbound: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe both ways before anything is published (nothing local or remote from now on is missed)."""
        self._inbound = await self.link.nc.subscribe(self._subject, cb=self._receive)
        await self.link.subscribed()
        local = self.bus.subscribe()
        self._outbound = asyncio.create_task(self._send(local), name="bus-bridge-out")

    async def stop(self) -> None:
        """Send what is still queued here, then stop both ways."""
        if self._outbound is not None:
            self._outbound.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._outbound
            self._outbound = None
        if self._inbound is not None:
            with contextlib.suppress(NatsError):
                await self._inbound.unsubscribe()
            self._inbound = None

    async def _send(self, local: Subscription) -> None:
        try:
            while True:
                event = await local.get()
                await self._publish(event)
                while local.pending():  # after a burst, flush whatever is queued before waiting again
                    await self._publish(await local.get())
        except asyncio.CancelledError:
            while local.pending():
                await self._publish(await local.get())
            raise
        finally:
            local.close()
            with contextlib.suppress(NatsError, asyncio.TimeoutError):
                await self.link.nc.flush(timeout=2)

    async def _publish(self, event: CallEvent) -> None:
        if event.origin is not None:  # it came from the bus: the others have it
            return
        wire = {"origin": self.origin, "event": event.as_message()}
        try:
            await self.link.nc.publish(self._subject, json.dumps(wire, ensure_ascii=False).encode())
            self.sent += 1
        except NatsError as exc:  # closed, or the reconnect buffer is full: the event is lost for the others
            log.error("bus.publish_failed", error=str(exc) or type(exc).__name__, type=event.type)

    async def _receive(self, msg: Msg) -> None:
        try:
            event = self._decode(msg.data)
        except (ValueError, InvalidEvent) as exc:
            self.refused += 1
            log.warning("bus.event_refused", error=str(exc)[:300], bytes=len(msg.data))
            return
        if event is not None:
            self.received += 1
            self.bus.publish(event)

    def _decode(self, data: bytes) -> CallEvent | None:
        event = decode_event(data)
        return None if event.origin == self.origin else event  # None: our own, echoed back by the server


def decode_event(data: bytes) -> CallEvent:
    """An event as it travels between processes ({"origin": NAME, "event": {...}}), checked against the contract
    like a local one; ValueError or InvalidEvent for anything else."""
    if len(data) > MAX_EVENT_BYTES:
        raise ValueError(f"an event over {MAX_EVENT_BYTES} bytes")
    wire = json.loads(data)
    if not isinstance(wire, dict) or not isinstance(wire.get("event"), dict):
        raise ValueError('an event on the bus is {"origin": NAME, "event": {...}}')
    origin = str(wire.get("origin") or "")
    body: dict[str, Any] = dict(wire["event"])
    type_, call_id, ts = body.pop("type", None), body.pop("call_id", None), body.pop("ts", None)
    if not isinstance(type_, str) or not isinstance(call_id, str):
        raise ValueError("an event needs its type and call_id")
    when = datetime.fromisoformat(ts) if isinstance(ts, str) else None
    return replace(CallEvent.loose(type_, call_id, body, when), origin=origin or "unknown")


__all__ = ["BusBridge", "BusUnavailable", "NatsLink", "decode_event", "process_name"]
