"""Node beacons over a real nats-server: a node that goes silent has its calls ended as `node_lost` on the desk
side's bus, with the caller's fields; a node that leaves cleanly, or a call that ended on its own, ends nothing."""

from __future__ import annotations

import asyncio
import threading
import time

from events.bus import CallEvent, EventBus
from hotline.nodes import NodeBeacon, NodeWatch
from tests.support.nats import NatsServer, linked, nats_server

__all__ = ["nats_server"]


async def ended(events: list[CallEvent], count: int, timeout_s: float = 5.0) -> list[CallEvent]:
    for _ in range(int(timeout_s / 0.05)):
        found = [e for e in events if e.type == "call.ended"]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    return [e for e in events if e.type == "call.ended"]


async def test_the_calls_of_a_silent_node_end_as_node_lost(nats_server: NatsServer) -> None:
    bus = EventBus()
    seen: list[CallEvent] = []
    subscription = bus.subscribe()
    async with (
        linked(nats_server, "node-a") as node_a,
        linked(nats_server, "node-b") as node_b,
        linked(nats_server, "desk") as desk,
    ):
        watch = NodeWatch(desk, bus, lost_after_s=0.6)
        await watch.start()
        await desk.subscribed()
        bus.emit("call.offered", "a-1", caller_number="13800138000", language="zh", operator_id="op1")
        calls_a, calls_b = ["a-1", "a-2", "a-3"], ["b-1"]
        beacon_a = NodeBeacon(node_a, lambda: list(calls_a), interval_s=0.1)
        beacon_b = NodeBeacon(node_b, lambda: list(calls_b), interval_s=0.1)
        await beacon_a.start()
        await beacon_b.start()
        for _ in range(100):
            if set(watch.nodes) == {"node-a", "node-b"} and watch.nodes["node-a"].calls == {"a-1", "a-2", "a-3"}:
                break
            await asyncio.sleep(0.05)
        bus.emit("call.ended", "a-3", reason="caller_hangup")  # ended on its own just before the node died
        await asyncio.sleep(0.1)

        assert beacon_a._task is not None
        beacon_a._task.cancel()  # node A dies: no more beacons, no goodbye
        await beacon_b.stop()  # node B leaves cleanly (it ended its own calls)
        while subscription.pending():
            seen.append(await subscription.get())
        for _ in range(60):
            await asyncio.sleep(0.05)
            while subscription.pending():
                seen.append(await subscription.get())
        await watch.stop()

    lost = [e for e in await ended(seen, 3) if e.data.get("reason") == "node_lost"]
    assert sorted(e.call_id for e in lost) == ["a-1", "a-2"]  # not a-3 (already ended), not b-1 (B left)
    first = next(e for e in lost if e.call_id == "a-1")
    assert (first.body.caller_number, first.body.language) == ("13800138000", "zh")  # the desk files it right
    assert watch.lost == 1 and watch.nodes == {}


async def test_a_pause_of_the_desk_is_not_taken_for_silent_nodes(nats_server: NatsServer) -> None:
    """The desk's own loop held up longer than lost_after_s while a node goes on sending beacons (from another
    thread's loop here, as from another process): the node's calls go on."""
    stop = threading.Event()

    def node() -> None:
        async def run() -> None:
            async with linked(nats_server, "node-p") as link:
                beacon = NodeBeacon(link, lambda: ["p-1"], interval_s=0.1)
                await beacon.start()
                while not stop.is_set():
                    await asyncio.sleep(0.05)
                await beacon.stop()

        asyncio.run(run())

    sender = threading.Thread(target=node, name="node-p")
    sender.start()
    bus = EventBus()
    try:
        async with linked(nats_server, "desk") as desk:
            watch = NodeWatch(desk, bus, lost_after_s=0.6)
            await watch.start()
            await desk.subscribed()
            for _ in range(100):
                if "node-p" in watch.nodes:
                    break
                await asyncio.sleep(0.05)
            assert watch.nodes["node-p"].calls == {"p-1"}
            time.sleep(1.5)  # blocks the desk's loop: the node's beacons wait in the socket meanwhile
            await asyncio.sleep(0.5)
            assert watch.lost == 0 and "node-p" in watch.nodes
            await watch.stop()
    finally:
        stop.set()
        sender.join(10)
