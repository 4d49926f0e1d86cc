"""Operators shared by two nodes over a real nats-server with JetStream: an operator one node rings or talks to is
never offered by the other; freed (after wrap-up), they are offered there again; a node that died without letting
go frees them when its lease expires."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import nats

from hotline.cluster.servers import NatsServer
from tests.support.nats import jetstream_server
from voice.leases import KvLeases
from voice.operators import Operator, OperatorPool, Presence

__all__ = ["jetstream_server"]


def pool() -> OperatorPool:
    return OperatorPool([Operator("op1001", frozenset({"zh"}), "PJSIP/op1001")])


@asynccontextmanager
async def node(server: NatsServer, name: str, ttl_s: float = 30.0) -> AsyncIterator[tuple[OperatorPool, KvLeases]]:
    nc = await nats.connect(server.url, token=server.token, name=name)
    operators = pool()
    leases = KvLeases(nc, "hotline_operators", name, ttl_s=ttl_s)
    await leases.start(operators)
    try:
        yield operators, leases
    finally:
        await leases.stop()
        await nc.close()


async def until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within the time")


async def test_an_operator_is_offered_by_one_node_at_a_time(jetstream_server: NatsServer) -> None:
    async with node(jetstream_server, "node1") as (pool1, leases1), node(jetstream_server, "node2") as (pool2, leases2):
        op1, op2 = pool1.get("op1001"), pool2.get("op1001")
        assert await leases1.take("op1001", "node1-call-1")
        pool1.reserve(op1)
        assert not await leases2.take("op1001", "node2-call-1")  # node2's caller must wait
        pool2.taken_elsewhere(op2)
        await until(lambda: op2.elsewhere == "node1")
        assert pool2.free_for({"zh"}) == []

        pool1.talking(op1)
        await pool1.call_finished(op1, wrap_up_s=0.3)  # still busy for the others during wrap-up
        await asyncio.sleep(0.15)
        assert pool2.free_for({"zh"}) == [] and op1.presence == Presence.WRAP_UP
        await until(lambda: pool2.free_for({"zh"}) == [op2])  # after wrap-up, offered on node2 again
        assert await leases2.take("op1001", "node2-call-1")
        await until(lambda: op1.elsewhere == "node2")
        assert (leases1.taken, leases2.taken, leases2.refused) == (1, 1, 1)

        pool2.reserve(op2)
        pool2.talking(op2)
        await pool2.set_presence("op1001", Presence.AWAY)  # away in the middle of node2's call: node2 lets go
        await until(lambda: op1.elsewhere is None)


async def test_a_dead_nodes_operators_are_free_again_when_its_lease_expires(jetstream_server: NatsServer) -> None:
    async with node(jetstream_server, "node2", ttl_s=1.5) as (pool2, leases2):
        nc = await nats.connect(jetstream_server.url, token=jetstream_server.token, name="node1")
        leases1 = KvLeases(nc, "hotline_operators", "node1", ttl_s=1.5)
        await leases1.start(pool())
        assert await leases1.take("op1001", "node1-call-1")
        await until(lambda: pool2.get("op1001").elsewhere == "node1")
        for task in leases1._tasks:  # node1 dies: no refresh, no goodbye
            task.cancel()
        await nc.close()
        await until(lambda: pool2.free_for({"zh"}) == [pool2.get("op1001")], timeout_s=5)
        assert await leases2.take("op1001", "node2-call-1")
