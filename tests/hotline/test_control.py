"""Call control across media nodes over a real nats-server: two voice processes' ControlServers, one desk's
RemoteControl. The desk sees the calls and queues of both, each operator as the busiest node sees them, and an
operation on a call reaches the node that has it."""

from __future__ import annotations

import pytest

from agent_desktop_api.desktop_runtime import ControlUnavailable, OperatorState, QueueState
from hotline.control import ControlServer, RemoteControl
from tests.support.nats import NatsServer, linked, nats_server
from voice.gateway import CallNotFound

__all__ = ["nats_server"]


class NodeSide:
    """What one node's gateway would answer (its own calls, queues and view of the operators)."""

    def __init__(self, calls: list[str], presence: str, waiting: int) -> None:
        self._calls = calls
        self.presence = presence
        self.waiting = waiting
        self.hung_up: list[str] = []

    async def calls(self) -> list[dict[str, object]]:
        return [{"call_id": call, "caller_number": "13800138000", "operator_id": None} for call in self._calls]

    async def operators(self) -> list[OperatorState] | None:
        return [OperatorState(id="op1001", skills=["zh"], presence=self.presence, registered=True)]

    async def queues(self) -> list[QueueState]:
        return [QueueState(queue="zh", waiting=self.waiting, longest_wait_s=float(self.waiting * 10))]

    async def set_presence(self, operator_id: str, presence: str) -> str:
        if self.presence == "available":
            self.presence = presence
        return self.presence

    async def hangup_call(self, call_id: str, reason: str = "operator_hangup") -> None:
        if call_id not in self._calls:
            raise CallNotFound(call_id)
        self.hung_up.append(call_id)

    async def transfer_call(self, call_id: str, target: str) -> bool:
        raise CallNotFound(call_id)

    async def add_interpreter(self, call_id: str, language: str) -> bool:
        raise CallNotFound(call_id)

    async def drop_interpreter(self, call_id: str) -> bool:
        raise CallNotFound(call_id)

    async def monitor_call(self, call_id: str, supervisor_id: str, mode: str) -> bool:
        raise CallNotFound(call_id)

    async def end_monitor(self, call_id: str, supervisor_id: str) -> bool:
        raise CallNotFound(call_id)


async def test_the_desk_asks_every_node_and_combines_the_answers(nats_server: NatsServer) -> None:
    node1 = NodeSide(["node1-1.1", "node1-1.2"], presence="on_call", waiting=2)
    node2 = NodeSide(["node2-1.1"], presence="available", waiting=1)
    async with linked(nats_server, "n1") as l1, linked(nats_server, "n2") as l2, linked(nats_server, "desk") as desk:
        servers = [ControlServer(l1.nc, "hotline.control", node1), ControlServer(l2.nc, "hotline.control", node2)]
        for server in servers:
            await server.start()
        control = RemoteControl(desk.nc, "hotline.control", timeout_s=2, nodes=lambda: 2)

        assert sorted(str(call["call_id"]) for call in await control.calls()) == ["node1-1.1", "node1-1.2", "node2-1.1"]
        assert await control.queues() == [{"queue": "zh", "waiting": 3, "longest_wait_s": 20.0}]
        [operator] = await control.operators() or []
        assert operator["presence"] == "on_call"  # node1 has them on a call; node2 would offer them one

        await control.hangup_call("node2-1.1")  # reaches node2 only
        assert (node1.hung_up, node2.hung_up) == ([], ["node2-1.1"])
        with pytest.raises(CallNotFound):  # no node has it
            await control.hangup_call("node3-9.9")
        assert await control.set_presence("op1001", "away") == "on_call"  # both told; node1's call still counts
        assert node2.presence == "away"

        for server in servers:
            await server.stop()
        await l1.nc.flush()
        await l2.nc.flush()
        with pytest.raises(ControlUnavailable, match="no gateway process"):  # no node at all: at once
            await control.calls()
