"""Media nodes on the bus. Each voice process says every second that it is alive and which calls it carries; the
desk side ends the calls of a node that went silent (killed, its machine lost) with reason `node_lost`, so the
operators' desks clear and the call records say what happened. A node that stops cleanly ends its calls itself
and says it is leaving, so nothing is ended twice.

A beacon is `{"node": NAME, "calls": [CALL_ID, …], "leaving": bool}` on `<bus.subject>.nodes`; NAME is the process's
bus name (host and PID), so a restarted node is a new one and the old one's calls are ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from prometheus_client import CollectorRegistry, Counter, Gauge

from events.bus import BusReader, CallEvent, EventBus
from events.contract import CallEnded
from events.nats_link import NatsLink

log = structlog.get_logger(__name__)

BEACON_S = 1.0
LOST_AFTER_S = 3.0  # three beacons missed: a bus hiccup of a second or two ends nothing
MAX_BEACON_BYTES = 256 * 1024
MAX_CALLS_KNOWN = 20_000  # caller fields kept for calls in progress, cluster-wide


class NodeBeacon:
    """This voice process's beacon: alive, and the calls it carries."""

    def __init__(self, link: NatsLink, calls: Callable[[], list[str]], interval_s: float = BEACON_S) -> None:
        self.link = link
        self.calls = calls
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="node-beacon")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._send(leaving=True)

    async def _run(self) -> None:
        while True:
            await self._send(leaving=False)
            await asyncio.sleep(self.interval_s)

    async def _send(self, *, leaving: bool) -> None:
        beacon = {"node": self.link.name, "calls": [] if leaving else self.calls(), "leaving": leaving}
        with contextlib.suppress(NatsError):  # disconnected: the client buffers it, or the next one goes
            await self.link.nc.publish(self.link.subject("nodes"), json.dumps(beacon).encode())


@dataclass
class _Node:
    last_seen: float
    calls: set[str] = field(default_factory=set)


class NodeWatch:
    """Ends the calls of nodes that stopped sending beacons (published on `bus` as `call.ended`, `node_lost`)."""

    def __init__(
        self,
        link: NatsLink,
        bus: EventBus,
        lost_after_s: float = LOST_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
        registry: CollectorRegistry | None = None,
        publishes: Callable[[], bool] = lambda: True,
    ) -> None:
        self.link = link
        self.bus = bus
        self.publishes = publishes  # False: another desk instance ends the calls (this one only keeps watch)
        self.lost_after_s = lost_after_s
        self.clock = clock
        self.nodes: dict[str, _Node] = {}
        self.lost = 0
        registry = registry if registry is not None else CollectorRegistry()  # the process's /metrics, or none
        self._nodes_up = Gauge(
            "hotline_nodes_up", "Media nodes heard from within the last lost_after_s", registry=registry
        )
        self._nodes_lost = Counter(
            "hotline_nodes_lost", "Media nodes that went silent; their calls were ended as node_lost", registry=registry
        )
        self._nodes_up.set_function(lambda: len(self.nodes))
        self._callers: dict[str, tuple[str | None, str | None]] = {}  # call id -> (caller number, language)
        # Calls seen ending: a beacon sent just before a call ended can arrive after its call.ended.
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._reader = BusReader(bus, self._seen, "node-watch")
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._reader.start()
        self._subscription = await self.link.nc.subscribe(self.link.subject("nodes"), cb=self._beacon)
        self._task = asyncio.create_task(self._check(), name="node-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._subscription is not None:
            with contextlib.suppress(NatsError):
                await self._subscription.unsubscribe()
        await self._reader.stop()

    def _seen(self, event: CallEvent) -> None:
        if event.type == "call.ended":
            self._callers.pop(event.call_id, None)
            self._ended[event.call_id] = None
            while len(self._ended) > MAX_CALLS_KNOWN:
                self._ended.popitem(last=False)
            for node in self.nodes.values():
                node.calls.discard(event.call_id)
            return
        if event.call_id in self._ended:
            return
        carrier = self.nodes.get(event.origin or "")
        if carrier is not None:  # a call that started after the node's last beacon is still its call
            carrier.calls.add(event.call_id)
        if event.call_id not in self._callers and len(self._callers) < MAX_CALLS_KNOWN:
            body = event.body
            self._callers[event.call_id] = (body.caller_number, body.language)

    async def _beacon(self, msg: Msg) -> None:
        try:
            if len(msg.data) > MAX_BEACON_BYTES:
                raise ValueError("too large")
            beacon = json.loads(msg.data)
            name, calls = str(beacon["node"]), [str(call) for call in beacon["calls"]]
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("node.beacon_refused", error=str(exc)[:200])
            return
        if beacon.get("leaving"):
            self.nodes.pop(name, None)
            log.info("node.left", node=name)
            return
        if name not in self.nodes:
            log.info("node.joined", node=name)
        self.nodes[name] = _Node(self.clock(), {call for call in calls if call not in self._ended})

    async def _check(self) -> None:
        loop = asyncio.get_running_loop()
        interval = min(0.5, self.lost_after_s / 4)
        away = False
        while True:
            due = loop.time() + interval
            await asyncio.sleep(interval)
            if not self.link.connected:  # we hear no beacons either: silence says nothing about the nodes
                away = True
                continue
            if away:  # back on the bus: every node gets its full time to be heard again
                away = False
                now = self.clock()
                for node in self.nodes.values():
                    node.last_seen = now
            # Woken late, this process was held up (CPU starved, a long callback) and the beacons of that time
            # wait unread behind this check: a node's silence counts only while the watch could hear it.
            late = loop.time() - due
            if late > 0:
                for node in self.nodes.values():
                    node.last_seen += late
            self.sweep()

    def sweep(self) -> None:
        """End the calls of every node silent for longer than `lost_after_s`, and forget the node."""
        now = self.clock()
        for name, node in list(self.nodes.items()):
            if now - node.last_seen <= self.lost_after_s:
                continue
            del self.nodes[name]
            self.lost += 1
            self._nodes_lost.inc()
            log.warning("node.lost", node=name, calls=len(node.calls), silent_s=round(now - node.last_seen, 1))
            for call_id in sorted(node.calls):
                caller_number, language = self._callers.pop(call_id, (None, None))
                if not self.publishes():
                    continue
                self.bus.send(
                    CallEnded(call_id=call_id, caller_number=caller_number, language=language, reason="node_lost")
                )


__all__ = ["NodeBeacon", "NodeWatch"]
