"""Call control for the desk: the gateway in this process (`LocalControl`), or the voice processes of other
processes over the bus's NATS connection (`ControlServer` beside each gateway answers what `RemoteControl` beside the
desk asks; with several media nodes, every node is asked and the answers are combined, see RemoteControl).

The wire format is one JSON object each way: `{"op": NAME, "args": {...}}` in, `{"ok": RESULT}` or
`{"error": KIND, "detail": TEXT}` out, where KIND names the exception the desk's routes map to an HTTP status
(see agent_desktop_api.desktop_runtime.CallControl).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any, cast

import structlog
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout

from agent_desktop_api.desktop_runtime import CallControl, ControlUnavailable, OperatorState, QueueState
from voice.gateway import CallNotFound, Gateway
from voice.operators import Presence, UnknownOperator

log = structlog.get_logger(__name__)

MAX_REQUEST_BYTES = 4096  # ids, a target, a language: a request is small
# Operations that ring a phone answer once it answered or rang out (ring timeouts are 20 s by default).
_RINGS = frozenset({"transfer_call", "add_interpreter", "monitor_call"})
RINGING_S = 60.0

_ERRORS: dict[str, type[Exception]] = {
    "call_not_found": CallNotFound,
    "unknown_operator": UnknownOperator,
    "not_with_operator": LookupError,
    "refused": ValueError,
    "no_routing": RuntimeError,
}


class LocalControl:
    """CallControl over the gateway in this process."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def calls(self) -> list[dict[str, object]]:
        return self.gateway.calls()

    async def operators(self) -> list[OperatorState] | None:
        routing = self.gateway.routing
        if routing is None:
            return None
        return [
            OperatorState(id=op.id, skills=sorted(op.skills), presence=op.presence.value, registered=op.registered)
            for op in routing.router.pool
        ]

    async def queues(self) -> list[QueueState]:
        routing = self.gateway.routing
        found = routing.router.queues() if routing is not None else {}
        return [
            QueueState(queue=queue, waiting=count, longest_wait_s=round(longest, 1))
            for queue, (count, longest) in sorted(found.items())
        ]

    async def set_presence(self, operator_id: str, presence: str) -> str:
        routing = self.gateway.routing
        if routing is None:
            raise RuntimeError("routing is not configured on this gateway")
        pool = routing.router.pool
        await pool.set_presence(operator_id, Presence(presence))
        return pool.get(operator_id).presence.value

    async def hangup_call(self, call_id: str, reason: str = "operator_hangup") -> None:
        await self.gateway.hangup_call(call_id, reason)

    async def transfer_call(self, call_id: str, target: str) -> bool:
        return await self.gateway.transfer_call(call_id, target)

    async def add_interpreter(self, call_id: str, language: str) -> bool:
        return await self.gateway.add_interpreter(call_id, language)

    async def drop_interpreter(self, call_id: str) -> bool:
        return await self.gateway.drop_interpreter(call_id)

    async def monitor_call(self, call_id: str, supervisor_id: str, mode: str) -> bool:
        return await self.gateway.monitor_call(call_id, supervisor_id, mode)

    async def end_monitor(self, call_id: str, supervisor_id: str) -> bool:
        return await self.gateway.end_monitor(call_id, supervisor_id)


def _kind(exc: Exception) -> str | None:
    """The wire name of an exception the desk understands (most specific first); None: a failure of ours."""
    for kind, cls in _ERRORS.items():
        if isinstance(exc, cls):
            return kind
    return None


def _str(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ValueError(f"{name}: a non-empty string of at most 200 characters")
    return value


class ControlServer:
    """Answers call-control requests from desks in other processes with the CallControl it is given."""

    def __init__(self, nc: Nats, subject: str, control: CallControl) -> None:
        self.nc = nc
        self.subject = subject
        self.control = control
        self.served = 0
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self.nc.subscribe(self.subject, cb=self._answer)
        for _ in range(2):  # the server routes requests to us from here on (see NatsLink.subscribed)
            await self.nc.flush()

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None

    async def _answer(self, msg: Msg) -> None:
        reply: dict[str, Any]
        try:
            reply = {"ok": await self._run(msg.data)}
        except Exception as exc:
            kind = _kind(exc)
            if kind is None:
                log.exception("control.failed")
                kind = "failed"
            reply = {"error": kind, "detail": str(exc)}
        self.served += 1
        if msg.reply:
            await msg.respond(json.dumps(reply, ensure_ascii=False).encode())

    async def _run(self, data: bytes) -> object:
        if len(data) > MAX_REQUEST_BYTES:
            raise ValueError(f"request over {MAX_REQUEST_BYTES} bytes")
        request = json.loads(data)
        if not isinstance(request, dict) or not isinstance(request.get("args", {}), dict):
            raise ValueError('a request is {"op": NAME, "args": {...}}')
        op, args = request.get("op"), request.get("args", {})
        control = self.control
        match op:
            case "calls":
                return await control.calls()
            case "operators":
                return await control.operators()
            case "queues":
                return await control.queues()
            case "set_presence":
                return await control.set_presence(_str(args, "operator_id"), _str(args, "presence"))
            case "hangup_call":
                await control.hangup_call(_str(args, "call_id"), _str(args, "reason"))
                return None
            case "transfer_call":
                return await control.transfer_call(_str(args, "call_id"), _str(args, "target"))
            case "add_interpreter":
                return await control.add_interpreter(_str(args, "call_id"), _str(args, "language"))
            case "drop_interpreter":
                return await control.drop_interpreter(_str(args, "call_id"))
            case "monitor_call":
                return await control.monitor_call(
                    _str(args, "call_id"), _str(args, "supervisor_id"), _str(args, "mode")
                )
            case "end_monitor":
                return await control.end_monitor(_str(args, "call_id"), _str(args, "supervisor_id"))
        raise ValueError(f"unknown operation {op!r}")


class RemoteControl:
    """CallControl over the bus. Every request goes to every voice process (one per media node of a cluster) and
    the answers are combined: the calls and queues of all nodes, each operator as the busiest node sees them, and an
    operation on a call done by the node that has it (the others answer `call_not_found`).

    `nodes()` is how many voice processes are known to be up (their beacons): the answers are awaited until that
    many came, or the timeout. Unknown (0): the first answer is taken as the only one."""

    def __init__(self, nc: Nats, subject: str, timeout_s: float, nodes: Callable[[], int] = lambda: 1) -> None:
        self.nc = nc
        self.subject = subject
        self.timeout_s = timeout_s
        self.nodes = nodes

    async def _gather(self, op: str, *, any_found: bool = False, **args: str) -> list[Any]:
        """The `ok` results of the voice processes that answered (errors raised as the desk's exceptions).

        any_found: stop at the first answer that is not `call_not_found` (the node that has the call)."""
        payload = json.dumps({"op": op, "args": args}, ensure_ascii=False).encode()
        timeout_s = self.timeout_s + (RINGING_S if op in _RINGS else 0.0)
        expected = max(1, self.nodes())
        try:
            inbox = self.nc.new_inbox()
            subscription = await self.nc.subscribe(inbox, max_msgs=expected)
            await self.nc.publish(self.subject, payload, reply=inbox)
        except NatsError as exc:
            raise ControlUnavailable(f"bus: {exc}") from None
        replies: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            while len(replies) < expected:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    msg = await subscription.next_msg(timeout=left)
                except (TimeoutError, NatsTimeout):
                    break
                if not msg.data:  # the server's "no responders" status: no voice process is subscribed
                    if not replies:
                        raise ControlUnavailable("no gateway process is connected to the bus")
                    break
                try:
                    reply = json.loads(msg.data)
                except ValueError:
                    continue
                if any_found and reply.get("error") != "call_not_found":
                    replies = [reply]
                    break
                replies.append(reply)
        finally:
            with contextlib.suppress(NatsError):
                await subscription.unsubscribe()
        if not replies:
            raise ControlUnavailable(f"no answer within {timeout_s:g} s")
        results = [reply.get("ok") for reply in replies if "error" not in reply]
        if not results:  # every node refused: the first one's reason
            error = replies[0]
            cls = _ERRORS.get(str(error["error"]))
            detail = str(error.get("detail") or error["error"])
            raise cls(detail) if cls is not None else ControlUnavailable(f"the gateway failed: {detail}")
        return results

    async def _on_call(self, op: str, **args: str) -> Any:
        return (await self._gather(op, any_found=True, **args))[0]

    async def calls(self) -> list[dict[str, object]]:
        return [call for calls in await self._gather("calls") for call in cast(list[dict[str, object]], calls)]

    async def operators(self) -> list[OperatorState] | None:
        views = [cast(list[OperatorState], view) for view in await self._gather("operators") if view is not None]
        if not views:
            return None
        merged: dict[str, OperatorState] = {}
        for view in views:
            for op in view:
                seen = merged.get(op["id"])
                if seen is None:
                    merged[op["id"]] = dict(op)  # type: ignore[assignment]
                    continue
                if _busiest(op["presence"]) < _busiest(seen["presence"]):
                    seen["presence"] = op["presence"]
                if op["registered"] or seen["registered"] is None:
                    seen["registered"] = op["registered"]
        return list(merged.values())

    async def queues(self) -> list[QueueState]:
        merged: dict[str, QueueState] = {}
        for view in await self._gather("queues"):
            for queue in cast(list[QueueState], view):
                seen = merged.setdefault(queue["queue"], {"queue": queue["queue"], "waiting": 0, "longest_wait_s": 0.0})
                seen["waiting"] += queue["waiting"]
                seen["longest_wait_s"] = max(seen["longest_wait_s"], queue["longest_wait_s"])
        return sorted(merged.values(), key=lambda queue: queue["queue"])

    async def set_presence(self, operator_id: str, presence: str) -> str:
        # Every node routes to this operator: each must know (the answer is the busiest node's view).
        answers = await self._gather("set_presence", operator_id=operator_id, presence=presence)
        return min((str(answer) for answer in answers), key=_busiest)

    async def hangup_call(self, call_id: str, reason: str = "operator_hangup") -> None:
        await self._on_call("hangup_call", call_id=call_id, reason=reason)

    async def transfer_call(self, call_id: str, target: str) -> bool:
        return bool(await self._on_call("transfer_call", call_id=call_id, target=target))

    async def add_interpreter(self, call_id: str, language: str) -> bool:
        return bool(await self._on_call("add_interpreter", call_id=call_id, language=language))

    async def drop_interpreter(self, call_id: str) -> bool:
        return bool(await self._on_call("drop_interpreter", call_id=call_id))

    async def monitor_call(self, call_id: str, supervisor_id: str, mode: str) -> bool:
        return bool(await self._on_call("monitor_call", call_id=call_id, supervisor_id=supervisor_id, mode=mode))

    async def end_monitor(self, call_id: str, supervisor_id: str) -> bool:
        return bool(await self._on_call("end_monitor", call_id=call_id, supervisor_id=supervisor_id))


# An operator's state across nodes: the busiest view wins (one node has them on a call, the others idle).
_BUSY = ["on_call", "ringing", "wrap_up", "away", "available"]


def _busiest(presence: str) -> int:
    return _BUSY.index(presence) if presence in _BUSY else len(_BUSY)


__all__ = ["ControlServer", "LocalControl", "RemoteControl"]

_check: Callable[[Gateway], CallControl] = LocalControl  # mypy: LocalControl satisfies the protocol
