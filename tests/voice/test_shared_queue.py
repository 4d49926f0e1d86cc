"""The callers' line shared by two nodes over a real nats-server with JetStream (voice.shared_queue): positions
count the callers of every node, a free operator goes to whoever came first wherever they wait, and a dead node's
callers stop holding the others back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import nats
import pytest

from hotline.cluster.servers import NatsServer
from tests.support.nats import jetstream_server
from voice.leases import KvLeases
from voice.operators import Operator, OperatorPool
from voice.router import Router
from voice.shared_queue import KvQueue

__all__ = ["jetstream_server"]

pytestmark = pytest.mark.slow  # nats-server starts


@dataclass
class Node:
    pool: OperatorPool
    router: Router
    leases: KvLeases
    line: KvQueue


@asynccontextmanager
async def node(server: NatsServer, name: str, ttl_s: float = 10.0) -> AsyncIterator[Node]:
    nc = await nats.connect(server.url, token=server.token, name=name)
    pool = OperatorPool([Operator("op1001", frozenset({"zh"}), "PJSIP/op1001")])
    router = Router(pool, average_handle_s=120)
    leases = KvLeases(nc, "hotline_operators", name)
    line = KvQueue(nc, "hotline_waiting", name, ttl_s=ttl_s)
    await leases.start(pool)
    await line.start(router)
    try:
        yield Node(pool, router, leases, line)
    finally:
        await line.stop()
        await leases.stop()
        await nc.close()


async def until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within the time")


async def busy(node: Node, call_id: str) -> Operator:
    """The node's caller has the operator (lease taken, talking)."""
    operator = node.pool.get("op1001")
    assert await node.leases.take(operator.id, call_id)
    node.pool.reserve(operator)
    node.pool.talking(operator)
    return operator


async def test_positions_count_the_callers_waiting_on_every_node(jetstream_server: NatsServer) -> None:
    async with node(jetstream_server, "node1") as one, node(jetstream_server, "node2") as two:
        first = one.router.enqueue("node1-a", "citizens", ("zh",))
        await asyncio.sleep(0.01)
        second = two.router.enqueue("node2-b", "citizens", ("zh",))
        other_queue = two.router.enqueue("node2-x", "english", ("en",))
        await asyncio.sleep(0.01)
        third = one.router.enqueue("node1-c", "citizens", ("zh",))
        await until(lambda: len(one.router.remote) == 2 and len(two.router.remote) == 2)
        assert [one.router.position(first), two.router.position(second), one.router.position(third)] == [1, 2, 3]
        assert two.router.position(other_queue) == 1  # another queue's line
        assert one.router.expected_wait_s(third) == 3 * 120  # three ahead of one operator, the third included
        await one.router.leave(first)
        await until(lambda: two.router.position(second) == 1)  # the first left: one place up, on the other node


async def test_a_freed_operator_goes_to_the_caller_who_came_first_on_the_other_node(
    jetstream_server: NatsServer,
) -> None:
    async with node(jetstream_server, "node1") as one, node(jetstream_server, "node2") as two:
        operator = await busy(one, "node1-talking")
        await until(lambda: two.pool.get("op1001").elsewhere == "node1")
        earlier = two.router.enqueue("node2-earlier", "citizens", ("zh",))
        await asyncio.sleep(0.01)
        later = one.router.enqueue("node1-later", "citizens", ("zh",))
        await until(lambda: "node2-earlier" in one.router.remote)
        taking_later = asyncio.ensure_future(one.router.acquire(later))
        taking_earlier = asyncio.ensure_future(two.router.acquire(earlier))

        await one.pool.call_finished(operator, wrap_up_s=0)  # free on node1, where the later caller waits
        got = await asyncio.wait_for(taking_earlier, 5)
        assert got.id == "op1001" and await two.leases.take(got.id, "node2-earlier")
        await asyncio.sleep(0.5)
        assert not taking_later.done()  # node1 kept its own free operator from its later caller
        await two.router.leave(earlier)
        taking_later.cancel()


async def test_a_dead_nodes_callers_stop_holding_the_line_after_the_ttl(jetstream_server: NatsServer) -> None:
    async with node(jetstream_server, "node1", ttl_s=1.5) as one:
        nc = await nats.connect(jetstream_server.url, token=jetstream_server.token, name="node2")
        router2 = Router(OperatorPool([Operator("op1001", frozenset({"zh"}), "PJSIP/op1001")]), 120)
        line2 = KvQueue(nc, "hotline_waiting", "node2", ttl_s=1.5)
        await line2.start(router2)
        router2.enqueue("node2-earlier", "citizens", ("zh",))
        later = one.router.enqueue("node1-later", "citizens", ("zh",))
        await until(lambda: "node2-earlier" in one.router.remote)
        for task in line2._tasks:  # node2 dies: no refresh, no goodbye
            task.cancel()
        await nc.close()
        started = asyncio.get_running_loop().time()
        got = await asyncio.wait_for(one.router.acquire(later), 6)  # the operator was free all along
        waited = asyncio.get_running_loop().time() - started
        assert got.id == "op1001" and 1.0 < waited < 4.0, waited
