"""A stand-in gateway for the desktop API tests: the real EventBus and OperatorPool, calls kept in a dict."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from agent_desktop_api.app import create_app
from agent_desktop_api.auth import AuthService
from agent_desktop_api.desktop import Desktop, OperatorState, QueueState, mount_desktop
from agent_desktop_api.settings import DesktopSettings
from config.database import DatabaseSettings, create_engine
from events.bus import EventBus
from voice.gateway import CallNotFound
from voice.operators import Operator, OperatorPool, Presence

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # tests only
PASSWORD = "pw"


class FakeGateway:
    """The desk's CallControl over a real OperatorPool and scripted calls, publishing on a real bus."""

    def __init__(self, operator_ids: tuple[str, ...] = ("op1001", "op1002", "op1003")) -> None:
        self.bus = EventBus()
        self.pool = OperatorPool(
            Operator(op, frozenset({"zh", "en"} if op == "op1001" else {"zh"}), f"PJSIP/{op}") for op in operator_ids
        )
        self.live: dict[str, dict[str, object]] = {}
        self.actions: list[tuple[str, ...]] = []
        self.refuse = False  # transfer/interpreter return False
        self.not_talking = False  # routing raises LookupError
        self.waiting: dict[str, tuple[int, float]] = {}  # queue -> callers waiting, longest wait (s)

    async def calls(self) -> list[dict[str, object]]:
        return list(self.live.values())

    async def operators(self) -> list[OperatorState] | None:
        return [
            OperatorState(id=op.id, skills=sorted(op.skills), presence=op.presence.value, registered=op.registered)
            for op in self.pool
        ]

    async def queues(self) -> list[QueueState]:
        return [QueueState(queue=q, waiting=n, longest_wait_s=w) for q, (n, w) in sorted(self.waiting.items())]

    async def set_presence(self, operator_id: str, presence: str) -> str:
        await self.pool.set_presence(operator_id, Presence(presence))
        return self.pool.get(operator_id).presence.value

    def _check(self, call_id: str) -> None:
        if call_id not in self.live:
            raise CallNotFound(call_id)
        if self.not_talking:
            raise LookupError(f"call {call_id} is not talking to an operator")

    async def hangup_call(self, call_id: str, reason: str = "operator_hangup") -> None:
        if call_id not in self.live:
            raise CallNotFound(call_id)
        self.actions.append(("hangup", call_id))
        self.end(call_id, reason)

    async def transfer_call(self, call_id: str, target: str) -> bool:
        self._check(call_id)
        self.actions.append(("transfer", call_id, target))
        return not self.refuse

    async def add_interpreter(self, call_id: str, language: str) -> bool:
        self._check(call_id)
        self.actions.append(("add_interpreter", call_id, language))
        return not self.refuse

    async def drop_interpreter(self, call_id: str) -> bool:
        self._check(call_id)
        self.actions.append(("drop_interpreter", call_id))
        return not self.refuse

    # ---- scripted calls (call these on the app's loop) ----

    def offer(self, call_id: str, operator_id: str, **extra: Any) -> None:
        self.live[call_id] = {
            "call_id": call_id,
            "caller_number": "13800138000",
            "language": "zh",
            "operator_id": None,
            "interpreter": False,
            "seconds": 3.0,
        }
        self.bus.emit(
            "call.offered",
            call_id,
            caller_number="13800138000",
            language="zh",
            operator_id=operator_id,
            queue="zh",
            ivr_path=["language:1", "service:1"],
            flow_version=1,
            interpreter_language=None,
            **extra,
        )

    def answer(self, call_id: str, operator_id: str) -> None:
        self.live[call_id]["operator_id"] = operator_id
        self.bus.emit(
            "call.answered",
            call_id,
            caller_number="13800138000",
            language="zh",
            operator_id=operator_id,
            queue="zh",
            ivr_path=["language:1", "service:1"],
            waited_s=1.5,
        )

    def final(self, call_id: str, segment_id: str, text: str, speaker: str = "caller") -> None:
        self.bus.emit(
            "transcript.final",
            call_id,
            segment_id=segment_id,
            speaker=speaker,
            text=text,
            start_ms=0,
            end_ms=1000,
            confidence=0.9,
        )

    def end(self, call_id: str, reason: str = "completed") -> None:
        self.live.pop(call_id, None)
        self.bus.emit("call.ended", call_id, caller_number="13800138000", language="zh", reason=reason, seconds=9.0)


@dataclass
class FakeService:
    engine: Engine
    gateway: FakeGateway | None = field(default_factory=FakeGateway)
    settings: object = None
    own_bus: EventBus = field(default_factory=EventBus)  # the bus of a desk without a gateway

    @property
    def control(self) -> FakeGateway | None:
        return self.gateway

    @property
    def bus(self) -> EventBus:
        return self.gateway.bus if self.gateway is not None else self.own_bus


def make_engine(path: Path) -> Engine:
    return create_engine(DatabaseSettings(url=f"sqlite:///{path}"))


def build_app(service: FakeService, settings: DesktopSettings | None = None) -> tuple[FastAPI, Desktop, AuthService]:
    auth = AuthService(service.engine, hasher=FAST)
    app = create_app(auth_service=auth)
    desktop = mount_desktop(app, service, settings=settings)
    return app, desktop, auth


def ensure_user(auth: AuthService, name: str, role: str) -> None:
    if name not in {u.name for u in auth.list_users()}:
        auth.add_user(name, role, PASSWORD)  # type: ignore[arg-type]


def token(client: TestClient, auth: AuthService, name: str, role: str = "operator") -> str:
    ensure_user(auth, name, role)
    response = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def on_loop(client: TestClient, func: Any, *args: Any) -> Any:
    """Run `func(*args)` on the app's event loop (the bus and the pool are not thread-safe)."""
    portal = client.portal
    assert portal is not None, "use the TestClient as a context manager"
    return portal.call(func, *args)


def settle(client: TestClient, desktop: Desktop) -> None:
    on_loop(client, desktop.log.settled)
