"""Call control for the desk: the gateway in this process (`LocalControl`), or in another process over the bus's
NATS connection (`ControlServer` beside the gateway answers what `RemoteControl` beside the desk asks).

The wire format is one JSON object each way: `{"op": NAME, "args": {...}}` in, `{"ok": RESULT}` or
`{"error": KIND, "detail": TEXT}` out, where KIND names the exception the desk's routes map to an HTTP status
(see agent_desktop_api.desktop_runtime.CallControl). One voice process answers: a cluster routes each call's
requests to its node.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

import structlog
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
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
    """CallControl over the bus: each method is one request to the ControlServer beside the gateway."""

    def __init__(self, nc: Nats, subject: str, timeout_s: float) -> None:
        self.nc = nc
        self.subject = subject
        self.timeout_s = timeout_s

    async def _ask(self, op: str, **args: str) -> Any:
        payload = json.dumps({"op": op, "args": args}, ensure_ascii=False).encode()
        timeout_s = self.timeout_s + (RINGING_S if op in _RINGS else 0.0)
        try:
            msg = await self.nc.request(self.subject, payload, timeout=timeout_s)
        except NoRespondersError:
            raise ControlUnavailable("no gateway process is connected to the bus") from None
        except (TimeoutError, NatsTimeout):
            raise ControlUnavailable(f"no answer within {timeout_s:g} s") from None
        except NatsError as exc:
            raise ControlUnavailable(f"bus: {exc}") from None
        reply = json.loads(msg.data)
        if "error" in reply:
            cls = _ERRORS.get(str(reply["error"]))
            detail = str(reply.get("detail") or reply["error"])
            raise cls(detail) if cls is not None else ControlUnavailable(f"the gateway failed: {detail}")
        return reply.get("ok")

    async def calls(self) -> list[dict[str, object]]:
        return cast(list[dict[str, object]], await self._ask("calls"))

    async def operators(self) -> list[OperatorState] | None:
        return cast(list[OperatorState] | None, await self._ask("operators"))

    async def queues(self) -> list[QueueState]:
        return cast(list[QueueState], await self._ask("queues"))

    async def set_presence(self, operator_id: str, presence: str) -> str:
        return str(await self._ask("set_presence", operator_id=operator_id, presence=presence))

    async def hangup_call(self, call_id: str, reason: str = "operator_hangup") -> None:
        await self._ask("hangup_call", call_id=call_id, reason=reason)

    async def transfer_call(self, call_id: str, target: str) -> bool:
        return bool(await self._ask("transfer_call", call_id=call_id, target=target))

    async def add_interpreter(self, call_id: str, language: str) -> bool:
        return bool(await self._ask("add_interpreter", call_id=call_id, language=language))

    async def drop_interpreter(self, call_id: str) -> bool:
        return bool(await self._ask("drop_interpreter", call_id=call_id))

    async def monitor_call(self, call_id: str, supervisor_id: str, mode: str) -> bool:
        return bool(await self._ask("monitor_call", call_id=call_id, supervisor_id=supervisor_id, mode=mode))

    async def end_monitor(self, call_id: str, supervisor_id: str) -> bool:
        return bool(await self._ask("end_monitor", call_id=call_id, supervisor_id=supervisor_id))


__all__ = ["ControlServer", "LocalControl", "RemoteControl"]

_check: Callable[[Gateway], CallControl] = LocalControl  # mypy: LocalControl satisfies the protocol
