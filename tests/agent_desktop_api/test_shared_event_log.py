"""Two desk API instances sharing one event log, on the real engines: PostgreSQL (the log, the writer's advisory
lock, its position) and nats-server with JetStream (the bus's kept events). One instance writes, the other
delivers what it stores; when the writer goes, the other takes over from the stored position."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa

from agent_desktop_api import event_log as event_log_module
from agent_desktop_api.event_log import EventLog, Message
from agent_desktop_api.event_tables import desktop_events
from agent_desktop_api.leadership import Leadership
from config.database import DatabaseSettings, create_engine
from events.bus import CallEvent, EventBus
from events.nats_link import BusBridge, NatsLink
from events.replay import EventStream, StreamPosition
from hotline import schema
from hotline.cluster.servers import NatsServer
from tests.support.nats import jetstream_server, linked
from tests.support.postgres import new_database, postgres_url

__all__ = ["jetstream_server", "postgres_url"]

pytestmark = pytest.mark.slow  # PostgreSQL and nats-server start

OPERATOR = "op1001"
REPLAY_S = 600.0


@dataclass
class Desk:
    """One desk API instance's event log and election, as `hotline serve --role desk` wires them."""

    name: str
    log: EventLog
    leadership: Leadership
    delivered: list[Message] = field(default_factory=list)  # what its sockets were handed

    def seqs(self, operator_id: str = OPERATOR) -> list[int]:
        return [m.seq for m in self.delivered if m.operator_id == operator_id]


async def wait_until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.02)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


async def start_log(stack: AsyncExitStack, name: str, url: str, server: NatsServer) -> tuple[EventLog, EventStream]:
    """A desk API instance's event log alone: the test says when it writes or follows (no election)."""
    engine = create_engine(DatabaseSettings(url=url))
    stack.callback(engine.dispose)
    link = await stack.enter_async_context(linked(server, f"desk-{name}", replay_s=REPLAY_S))
    stream = EventStream(link, REPLAY_S)
    log = EventLog(engine)
    stack.push_async_callback(log.stop)
    stack.push_async_callback(stream.close)
    return log, stream


async def start_desk(stack: AsyncExitStack, name: str, url: str, server: NatsServer) -> Desk:
    log, stream = await start_log(stack, name, url, server)
    leadership = Leadership(log.engine, lambda: log.lead(stream), log.follow, check_s=0.1)
    log.replaced_listeners.append(leadership.resign)
    desk = Desk(name, log, leadership)
    log.listeners.append(desk.delivered.extend)
    leadership.start()
    stack.push_async_callback(leadership.stop, log.stop)
    return desk


async def start_caller_side(stack: AsyncExitStack, server: NatsServer) -> EventBus:
    """A voice process's bus: what it publishes goes out over NATS (and into the kept stream)."""
    link: NatsLink = await stack.enter_async_context(linked(server, "voice", replay_s=REPLAY_S))
    await EventStream(link, REPLAY_S).ensure()
    bus = EventBus()
    bridge = BusBridge(bus, link)
    await bridge.start()
    stack.push_async_callback(bridge.stop)
    return bus


def line(n: int) -> CallEvent:
    segment = {"segment_id": f"s{n}", "speaker": "caller", "start_ms": n * 1000, "end_ms": n * 1000 + 900}
    return CallEvent.loose("transcript.final", "c1", {**segment, "text": f"第{n}句", "confidence": 0.9})


def stored_lines(url: str) -> list[tuple[int, str]]:
    """The operator's stream as the database has it: (seq, the line's text)."""
    engine = create_engine(DatabaseSettings(url=url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(desktop_events.c.seq, desktop_events.c.body)
                .where(desktop_events.c.operator_id == OPERATOR, desktop_events.c.type == "transcript.final")
                .order_by(desktop_events.c.seq)
            )
            return [(int(seq), str(json.loads(body)["text"])) for seq, body in rows]
    finally:
        engine.dispose()


@pytest.fixture
def database(postgres_url: str) -> str:
    url = new_database(postgres_url)
    engine = create_engine(DatabaseSettings(url=url))
    schema.upgrade(engine)
    engine.dispose()
    return url


async def test_the_writer_goes_mid_call_and_the_other_instance_stores_every_line_once_in_order(
    database: str, jetstream_server: NatsServer, stack: AsyncExitStack
) -> None:
    bus = await start_caller_side(stack, jetstream_server)
    a = await start_desk(stack, "a", database, jetstream_server)
    await wait_until(lambda: a.leadership.leading)
    b = await start_desk(stack, "b", database, jetstream_server)
    await wait_until(lambda: b.log.following)  # B delivers every row stored from now on
    assert not b.leadership.leading  # one writer

    bus.publish(CallEvent.loose("call.answered", "c1", {"operator_id": OPERATOR, "caller_number": "13800000000"}))
    for n in range(1, 41):
        bus.publish(line(n))
        await asyncio.sleep(0.005)
    await wait_until(lambda: len(b.seqs()) == 41)  # delivered by the follower from what A stored
    assert a.seqs() == b.seqs() == list(range(1, 42))
    assert b.log.open_call("c1") is not None and b.log.open_call("c1").operator_id == OPERATOR  # type: ignore[union-attr]

    # A goes while the caller keeps talking: its writer stops mid-work, and its lock's connection closes.
    publishing = asyncio.create_task(_talk(bus, range(41, 121)))
    await asyncio.sleep(0.1)
    await a.log.stop()
    await a.leadership.stop()
    await publishing
    bus.publish(CallEvent.loose("call.ended", "c1", {"reason": "caller_hangup"}))

    await wait_until(lambda: b.leadership.leading)
    await wait_until(lambda: b.log.last_seq(OPERATOR) == 122)  # answered, 120 lines, ended: all stored
    assert b.log.open_call("c1") is None
    lines = stored_lines(database)
    assert [text for _, text in lines] == [f"第{n}句" for n in range(1, 121)]  # each line once, in order
    seqs = [seq for seq, _ in lines]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # B's sockets got the whole stream, each message once, with no gap: as follower first, then as writer.
    await wait_until(lambda: b.seqs()[-1:] == [b.log.last_seq(OPERATOR)])
    assert b.seqs() == list(range(1, 123))
    assert Counter(m.type for m in b.delivered if m.operator_id == OPERATOR)["call.ended"] == 1


async def _talk(bus: EventBus, numbers: range) -> None:
    for n in numbers:
        bus.publish(line(n))
        await asyncio.sleep(0.005)


async def test_a_writer_that_was_replaced_without_knowing_stores_nothing_more(
    database: str, jetstream_server: NatsServer, stack: AsyncExitStack
) -> None:
    bus = await start_caller_side(stack, jetstream_server)
    a = await start_desk(stack, "a", database, jetstream_server)
    await wait_until(lambda: a.leadership.leading)
    bus.publish(CallEvent.loose("call.answered", "c1", {"operator_id": OPERATOR}))
    bus.publish(line(1))
    await wait_until(lambda: len(a.seqs()) == 2)

    # A loses its lock (its database connection broke) but its writer keeps running, not knowing yet.
    await a.leadership._call(a.leadership._release)  # on its own thread: never under a query it is running
    b = await start_desk(stack, "b", database, jetstream_server)
    await wait_until(lambda: b.leadership.leading)
    for n in range(2, 12):
        bus.publish(line(n))
    await wait_until(lambda: len(stored_lines(database)) == 11)
    await wait_until(lambda: a.log.mode in ("follower", "replaced"))  # A's next store failed its check
    await asyncio.sleep(0.3)
    assert [text for _, text in stored_lines(database)] == [f"第{n}句" for n in range(1, 12)]
    assert not a.leadership.leading


async def test_a_line_the_old_writer_stores_just_before_the_takeover_reaches_the_new_writers_sockets(
    database: str, jetstream_server: NatsServer, stack: AsyncExitStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old writer's last store commits while the new one takes over (after its last read of the table):
    that line must still reach the new writer's sockets, once, before the lines it numbers itself."""
    bus = await start_caller_side(stack, jetstream_server)
    a, a_stream = await start_log(stack, "a", database, jetstream_server)
    await a.lead(a_stream)
    b, b_stream = await start_log(stack, "b", database, jetstream_server)
    await b.follow()
    await wait_until(lambda: b.following)
    delivered: list[Message] = []
    b.listeners.append(delivered.extend)
    bus.publish(CallEvent.loose("call.answered", "c1", {"operator_id": OPERATOR}))
    bus.publish(line(1))
    await wait_until(lambda: [m.seq for m in delivered] == [1, 2])

    loop = asyncio.get_running_loop()
    real_read_position = event_log_module.read_position

    async def a_stores_one_more_line() -> None:
        bus.publish(line(2))
        await wait_until(lambda: a.last_seq(OPERATOR) == 3)

    def read_position_after_a_stored(engine: sa.Engine) -> StreamPosition | None:
        asyncio.run_coroutine_threadsafe(a_stores_one_more_line(), loop).result(timeout=10)
        return real_read_position(engine)

    monkeypatch.setattr(event_log_module, "read_position", read_position_after_a_stored)
    await b.lead(b_stream)  # B takes over while A's store of line 2 commits
    monkeypatch.setattr(event_log_module, "read_position", real_read_position)
    for n in range(3, 6):
        bus.publish(line(n))
    await wait_until(lambda: b.last_seq(OPERATOR) == 6)
    assert [m.seq for m in delivered if m.operator_id == OPERATOR] == [1, 2, 3, 4, 5, 6]
    assert [text for _, text in stored_lines(database)] == [f"第{n}句" for n in range(1, 6)]
