"""The in-process event bus: calls, transcripts and addresses published once, read by every subscriber.

Publishers never block: each subscriber has its own bounded queue, and one that falls behind loses its oldest
events and is told how many (`dropped`). The desktop API numbers events per operator (`seq`) and stores them, so
its own clients can resume; this bus is only the fan-out inside the process (DESIGN §3, §6: Redis Streams or NATS
take its place in a cluster). What may be published is `events.contract`: the bus refuses anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from events.contract import CallEventModel, check_event

log = structlog.get_logger(__name__)

_ENVELOPE = frozenset({"type", "call_id", "ts", "seq"})


@dataclass(frozen=True)
class CallEvent:
    """One event as it travels: `body` is the typed model a publisher built (what subscribers read), `data` the
    fields it set as JSON values (what the desk stores and sends), `ts` when it happened."""

    body: CallEventModel
    data: dict[str, Any]
    ts: datetime
    origin: str | None = field(default=None, compare=False)  # the process it came from over the link; None: this

    @property
    def type(self) -> str:
        return self.body.type

    @property
    def call_id(self) -> str:
        return self.body.call_id

    @classmethod
    def of(cls, model: CallEventModel) -> CallEvent:
        """The event of a model a publisher built: the fields it set, as JSON values."""
        data = model.model_dump(mode="json", exclude_unset=True, exclude=set(_ENVELOPE))
        return cls(model, data, model.ts or datetime.now(UTC))

    @classmethod
    def loose(cls, type_: str, call_id: str, data: dict[str, Any], ts: datetime | None = None) -> CallEvent:
        """The event of loose fields (tests, tools, benchmarks); InvalidEvent if it is not in the contract."""
        return cls.of(check_event(type_, call_id, data if ts is None else {**data, "ts": ts}))

    def as_message(self) -> dict[str, Any]:
        """The JSON body of DESIGN §3 without `seq` (the desktop stream adds it)."""
        return {"type": self.type, "call_id": self.call_id, "ts": self.ts.isoformat(), **self.data}


class Subscription:
    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[CallEvent] = asyncio.Queue(maxsize)
        self.dropped = 0

    def _offer(self, event: CallEvent) -> None:
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> CallEvent:
        return await self._queue.get()

    def pending(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        self._bus._subscriptions.discard(self)

    def __aiter__(self) -> AsyncIterator[CallEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[CallEvent]:
        while True:
            yield await self._queue.get()


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self.published = 0

    def publish(self, event: CallEvent) -> None:
        """Fan `event` out (its model was checked when it was built)."""
        self.published += 1
        for subscription in list(self._subscriptions):
            subscription._offer(event)

    def send(self, model: CallEventModel) -> None:
        """Publish an event a publisher built as its model (checked when it was built)."""
        self.publish(CallEvent.of(model))

    def emit(self, type_: str, call_id: str, **data: Any) -> None:
        """Publish from loose fields (checked here): for tests and tools; the gateway's publishers use `send`."""
        self.publish(CallEvent.loose(type_, call_id, data))

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        subscription = Subscription(self, maxsize)
        self._subscriptions.add(subscription)
        return subscription

    @contextlib.contextmanager
    def subscribed(self, maxsize: int = 10_000) -> Iterator[Subscription]:
        subscription = self.subscribe(maxsize)
        try:
            yield subscription
        finally:
            subscription.close()


class BusReader:
    """Hands every event published from `start()` on to `handle`, in order, on the running loop. An error in
    `handle` is logged with the event and the reading goes on: one odd event must not end a subscriber."""

    def __init__(self, bus: EventBus, handle: Callable[[CallEvent], None], name: str) -> None:
        self.bus = bus
        self.handle = handle
        self.name = name
        self._task: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None

    def start(self) -> None:
        """Subscribe now (nothing published from here on is missed) and read on the running loop (idempotent)."""
        if self._task is None:
            self._subscription = self.bus.subscribe()
            self._task = asyncio.create_task(self._read(self._subscription), name=self.name)

    def pending(self) -> int:
        """Events published but not yet handed to `handle`."""
        return self._subscription.pending() if self._subscription is not None else 0

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _read(self, subscription: Subscription) -> None:
        try:
            async for event in subscription:
                try:
                    self.handle(event)
                except Exception:
                    log.exception("bus.handler_failed", reader=self.name, call_id=event.call_id, type=event.type)
        finally:
            subscription.close()
