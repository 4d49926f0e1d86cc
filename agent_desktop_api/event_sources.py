"""Where the desktop event log's writer reads the bus: the in-process bus, or the bus's kept stream from a stored
position (a desk API instance of several)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import structlog
from nats.errors import Error as NatsError

from events.bus import CallEvent, Subscription
from events.replay import EventStream, StreamPosition

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Pulled:
    """What a source gave the writer: events, where it is in the bus's stream after them (None: the in-process
    bus, which has no positions), and how many the bus dropped before them."""

    events: list[CallEvent]
    position: StreamPosition | None = None
    dropped: int = 0


class EventSource(Protocol):
    """Where the writer reads events: the in-process bus, or the bus's stream from a stored position."""

    async def pull(self, timeout: float) -> Pulled | None: ...  # None: nothing within `timeout`


class BusSource:
    """The in-process bus: a subscription made when the log starts (one process, or one desk API instance)."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription

    async def pull(self, timeout: float) -> Pulled | None:
        try:
            first = await asyncio.wait_for(self.subscription.get(), timeout)
        except TimeoutError:
            return None
        events = [first]
        while self.subscription.pending() and len(events) < 1000:
            events.append(await self.subscription.get())  # queued already: returns without suspending
        dropped, self.subscription.dropped = self.subscription.dropped, 0
        return Pulled(events, dropped=dropped)


class StreamSource:
    """The bus's JetStream stream from a position on (a desk API instance of several; see events.replay)."""

    def __init__(self, stream: EventStream, position: StreamPosition) -> None:
        self.stream = stream
        self.position = position

    async def pull(self, timeout: float) -> Pulled | None:
        try:
            delivered = await self.stream.read(self.position.seq)
        except NatsError as exc:  # disconnected or the server restarting: try again shortly
            log.warning("desktop.bus_read_failed", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(min(timeout, 1.0))
            return None
        if not delivered:
            return None
        self.position = StreamPosition(self.position.stream, delivered[-1].seq)
        return Pulled([d.event for d in delivered if d.event is not None], self.position)
