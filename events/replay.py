"""The bus's memory: a JetStream stream on the NATS server that keeps every event published on `<subject>.events`
for `bus.replay_s`, numbered by the server (the stream sequence).

Publishers do not change: the server copies what they publish into the stream. A reader that stores what it read
together with the stream sequence (the desk's event log, in the same transaction) can stop at any moment, and
whoever reads next goes on from the sequence after the stored one: nothing skipped, nothing twice. The stream is
named by the server's creation time too: a stream made again (its store deleted) numbers from 1, and a reader
that stored a position in the old one starts the new one from its beginning.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext

from events.bus import CallEvent
from events.contract import InvalidEvent
from events.nats_link import NatsLink, decode_event

log = structlog.get_logger(__name__)

FETCH_TIMEOUT_S = 1.0  # an idle reader comes back this often (to notice a stop, or a broken consumer)
CONSUMER_IDLE_S = 30.0  # the server deletes the consumer of a reader that died


@dataclass(frozen=True)
class StreamPosition:
    """Where a reader is: the stream (by its creation time) and the last sequence it took."""

    stream: str
    seq: int


@dataclass(frozen=True)
class Delivered:
    seq: int
    event: CallEvent | None  # None: refused (not an event of the contract); its sequence still counts


class EventStream:
    """The JetStream stream of the bus's events, and one reader's consumer on it."""

    def __init__(self, link: NatsLink, replay_s: float) -> None:
        self.link = link
        self.replay_s = replay_s
        self.name = f"{link.settings.subject.replace('.', '_')}_events"
        self.subject = link.subject("events")
        self.gaps = 0  # sequences the server no longer had when we asked (older than replay_s)
        self._consumer: JetStreamContext.PullSubscription | None = None
        self._next = 0  # the sequence the consumer delivers next
        self._reconnects = 0

    @property
    def _js(self) -> JetStreamContext:
        return self.link.nc.jetstream()

    async def ensure(self) -> str:
        """Create the stream (or update its retention) and return its identity (the server's creation time)."""
        config = StreamConfig(name=self.name, subjects=[self.subject], max_age=self.replay_s, storage=StorageType.FILE)
        info = await self._js.add_stream(config)
        if info.config.max_age != self.replay_s:
            info = await self._js.update_stream(config)
        return info.created.isoformat() if info.created is not None else "unknown"

    async def start_after(self, stored: StreamPosition | None) -> StreamPosition:
        """Where to read from: after `stored` if it is of this stream, else from the stream's first event."""
        identity = await self.ensure()
        if stored is not None and stored.stream == identity:
            return stored
        info = await self._js.stream_info(self.name)
        first = max(1, info.state.first_seq)
        if stored is not None:
            log.warning("bus.replay_new_stream", stored=stored.stream, now=identity, from_seq=first)
        return StreamPosition(identity, first - 1)

    async def read(self, after: int, batch: int = 1000) -> list[Delivered]:
        """The next events after sequence `after` (at most `batch`; [] after FETCH_TIMEOUT_S of none). A broken
        consumer (the server restarted, the connection is down) is made again at `after + 1` on the next call."""
        if self._consumer is None or self._next != after + 1 or self._reconnects != self.link.reconnects:
            await self._drop()
            self._reconnects = self.link.reconnects  # a restarted server may have lost the consumer
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=after + 1,
                ack_policy=AckPolicy.NONE,  # the reader's own stored position is the acknowledgement
                inactive_threshold=CONSUMER_IDLE_S,
                max_ack_pending=-1,
            )
            self._consumer = await self._js.pull_subscribe(self.subject, stream=self.name, config=config)
            self._next = after + 1
        try:
            messages = await self._consumer.fetch(batch, timeout=FETCH_TIMEOUT_S)
        except TimeoutError:
            if await self._behind(after):  # the consumer is gone while events wait: make it again
                await self._drop()
            return []
        except NatsError:
            await self._drop()
            raise
        delivered: list[Delivered] = []
        for msg in messages:
            seq = msg.metadata.sequence.stream
            if seq < self._next:
                continue  # delivered before (cannot happen without acks, but never store one twice)
            if seq > self._next:
                self.gaps += seq - self._next
                log.error("bus.replay_gap", missing_from=self._next, missing_to=seq - 1)
            self._next = seq + 1
            try:
                delivered.append(Delivered(seq, decode_event(msg.data)))
            except (ValueError, InvalidEvent) as exc:
                log.warning("bus.replay_refused", seq=seq, error=str(exc)[:300])
                delivered.append(Delivered(seq, None))
        return delivered

    async def _behind(self, after: int) -> bool:
        try:
            info = await self._js.stream_info(self.name)
        except (NatsError, TimeoutError):
            return True
        return info.state.last_seq > after

    async def close(self) -> None:
        await self._drop()

    async def _drop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(NatsError, asyncio.TimeoutError):
                await consumer.unsubscribe()


__all__ = ["Delivered", "EventStream", "StreamPosition"]
