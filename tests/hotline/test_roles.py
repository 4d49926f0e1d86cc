"""`hotline serve --role voice|assist|desk`: the parts as three processes meeting on a real nats-server, with a real
Asterisk, real phones, real speech and the real recogniser; the operator works at the desk process only."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from agent_desktop_api.auth import AuthService
from agent_desktop_api.event_log import EventLog
from config.database import DatabaseSettings, create_engine
from tests.agent_desktop_api.desktop_support import FAST
from tests.support.nats import NatsServer, nats_server
from tests.voice.conftest import entry_uri, free_tcp_port, registered
from tests.voice.test_transcription import ADDRESS_CLIP, telephone_clip
from tools.softphone.driver import Softphone
from voice.asterisk.instance import AsteriskInstance

pytestmark = pytest.mark.slow

__all__ = ["nats_server"]

HOTLINE = str(Path(sys.executable).parent / "hotline")


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(overrides)
    return env


class Role:
    def __init__(self, name: str, env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.port = free_tcp_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / f"{name}.log"
        log = self.log_path.open("wb")
        env = {**env, "HOTLINE_HTTP__PORT": str(self.port)}
        self.proc = subprocess.Popen([HOTLINE, "serve", "--role", name], env=env, stdout=log, stderr=log)

    async def ready(self, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, f"{self.name} exited with {self.proc.returncode}: {self.log()}"
                try:
                    answer = await client.get(self.base + "/readyz")
                    if answer.status_code == 200:
                        checks: dict[str, Any] = answer.json()["checks"]
                        return checks
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"{self.name} never became ready: {self.log()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


@contextmanager
def roles(env: dict[str, str], folder: Path, *names: str) -> Iterator[dict[str, Role]]:
    started = {name: Role(name, env, folder) for name in names}
    try:
        yield started
    finally:
        for role in started.values():
            role.stop()


def cluster_env(asterisk: AsteriskInstance, nats: NatsServer, database: Path) -> dict[str, str]:
    return _env(
        HOTLINE_ASTERISK__MODE="external",
        HOTLINE_ASTERISK__ARI_URL=asterisk.ari_url,
        HOTLINE_ASTERISK__ARI_USERNAME=asterisk.ari_username,
        HOTLINE_ASTERISK__ARI_PASSWORD=asterisk.ari_password,
        HOTLINE_DATABASE__URL=f"sqlite:///{database}",
        HOTLINE_RECORDING__DIR=str(database.parent / "recordings"),
        HOTLINE_ASR__ENABLED="true",
        HOTLINE_ROUTING__WRAP_UP_S="0",
        HOTLINE_BUS__URL=nats.url,
        HOTLINE_BUS__TOKEN=nats.token,
        HOTLINE_LOGGING__FORMAT="json",
    )


class DeskStream:
    """The desk's messages as they came; `first` finds one among them or waits for it (the assistants answer in
    their own order: a card from a partial line, the ticket draft and the final's card may come in any order)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def first(
        self, wanted: str, timeout: float = 30, where: Callable[[dict[str, Any]], bool] = lambda _: True
    ) -> dict[str, Any]:
        for message in self.seen:
            if message["type"] == wanted and where(message):
                return message
        deadline = time.monotonic() + timeout
        while True:
            message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), deadline - time.monotonic()))
            self.seen.append(message)
            if message["type"] == wanted and where(message):
                return message


async def test_voice_assist_and_desk_as_three_processes_serve_a_call(
    asterisk: AsteriskInstance, nats_server: NatsServer, tmp_path: Path
) -> None:
    database = tmp_path / "hotline.db"
    clip = telephone_clip(ADDRESS_CLIP, tmp_path / "address.wav")
    with roles(cluster_env(asterisk, nats_server, database), tmp_path, "voice", "assist", "desk") as parts:
        checks = {name: await role.ready() for name, role in parts.items()}
        assert checks["voice"] == {"ari": True, "database": True, "bus": True}
        assert checks["assist"] == {"bus": True}
        assert checks["desk"] == {"database": True, "event_store": True, "bus": True}
        desk = parts["desk"]
        users = AuthService(create_engine(DatabaseSettings(url=f"sqlite:///{database}")), hasher=FAST)
        users.add_user("op1002", "operator", "pw")
        users.add_user("sup2001", "supervisor", "pw")
        async with httpx.AsyncClient(base_url=desk.base, timeout=15) as http:
            token = (await http.post("/api/auth/login", json={"username": "op1002", "password": "pw"})).json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            me = (await http.get("/api/me", headers=auth)).json()  # the operator pool lives in the voice process
            assert me["presence"] == "available" and me["skills"] == ["zh"]
            async with (
                websockets.connect(f"ws://127.0.0.1:{desk.port}/api/events?token={token}") as ws,
                registered(asterisk, tmp_path, "op1002", "sup2001") as (operator, supervisor),
                Softphone.open(log_path=tmp_path / "caller.log", user="13800138000") as caller,
            ):
                call = await caller.call(entry_uri(asterisk))
                await caller.wait_event("media_active", call=call, timeout=10)
                for key in ("1", "1"):  # the shipped flow: Mandarin, citizens' service
                    await asyncio.sleep(0.6)
                    await caller.dtmf(call, key)
                incoming = await operator.wait_incoming(timeout=20)
                await operator.wait_state(incoming, "CONFIRMED", timeout=5)
                desk = DeskStream(ws)
                offered = await desk.first("call.offered")
                answered = await desk.first("call.answered")
                call_id = offered["call_id"]
                assert answered["call_id"] == call_id and answered["operator_id"] == "op1002"
                current = await http.get("/api/calls/current", headers=auth)
                assert current.status_code == 200 and current.json()["state"] == "talking"

                await asyncio.sleep(0.5)
                await caller.play(call, clip, wait=True, timeout=30)
                final = await desk.first("transcript.final", timeout=40)  # recognised in the voice process
                assert final["speaker"] in ("caller", "operator") and final["call_id"] == call_id
                place = await desk.first(  # resolved in the assist process (a partial line's card may come first)
                    "address.candidates",
                    timeout=40,
                    where=lambda m: [c["district"] for c in m["candidates"][:1]] == ["海淀区"],
                )
                assert place["call_id"] == call_id
                draft = await desk.first("ticket.draft", timeout=20)  # drafted in the assist process
                assert draft["call_id"] == call_id

                login = await http.post("/api/auth/login", json={"username": "sup2001", "password": "pw"})
                boss = {"Authorization": f"Bearer {login.json()['token']}"}
                listen = await http.post(
                    f"/api/supervisor/calls/{call_id}/monitor", json={"mode": "listen"}, headers=boss
                )
                assert listen.status_code == 200, listen.text  # over the bus: the voice process rang the phone
                await supervisor.wait_state(await supervisor.wait_incoming(timeout=5), "CONFIRMED", timeout=5)
                monitored = await desk.first("call.monitored")
                assert (monitored["supervisor_id"], monitored["mode"]) == ("sup2001", "listen")

                hangup = await http.post(f"/api/calls/{call_id}/hangup", headers=auth)  # over the bus to voice
                assert hangup.status_code == 200, hangup.text
                await caller.wait_state(call, "DISCONNECTED", timeout=10)
                ended = await desk.first("call.ended")
                assert ended["reason"] == "operator_hangup"
                assert offered["seq"] < answered["seq"] < final["seq"] < ended["seq"]

            assert parts["voice"].stop() == 0  # the desk stays up and says the call side does not answer
            current = await http.get("/api/calls/current", headers=auth)
            assert current.status_code == 503 and "does not answer" in current.json()["detail"]
            assert (await http.get("/readyz")).status_code == 200  # the desk itself still serves
        for name in ("assist", "desk"):
            assert parts[name].stop() == 0, parts[name].log()
    stored = EventLog(create_engine(DatabaseSettings(url=f"sqlite:///{database}"))).call(call_id)
    assert stored is not None and stored.reason == "operator_hangup" and stored.operator_id == "op1002"


def test_a_role_without_the_bus_is_refused_with_the_setting_to_set(tmp_path: Path) -> None:
    env = _env(HOTLINE_DATABASE__URL=f"sqlite:///{tmp_path / 'hotline.db'}", HOTLINE_HTTP__PORT=str(free_tcp_port()))
    done = subprocess.run([HOTLINE, "serve", "--role", "desk"], env=env, capture_output=True, timeout=60, text=True)
    assert done.returncode == 2
    assert "bus.url" in done.stderr


def test_a_bus_that_cannot_be_reached_is_exit_code_6(nats_server: NatsServer, tmp_path: Path) -> None:
    env = _env(
        HOTLINE_DATABASE__URL=f"sqlite:///{tmp_path / 'hotline.db'}",
        HOTLINE_HTTP__PORT=str(free_tcp_port()),
        HOTLINE_BUS__URL=nats_server.url,
        HOTLINE_BUS__TOKEN="not-the-token",
        HOTLINE_BUS__CONNECT_TIMEOUT_S="2",
    )
    done = subprocess.run([HOTLINE, "serve", "--role", "assist"], env=env, capture_output=True, timeout=60, text=True)
    assert done.returncode == 6
    assert "cannot connect to the bus" in done.stderr and "not-the-token" not in done.stderr
