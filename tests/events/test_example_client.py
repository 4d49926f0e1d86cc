"""docs/example_client.py against the real gateway: it logs in, follows the stream and prints what arrives."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from agent_desktop_api.auth import AuthService
from tests.agent_desktop_api.desktop_support import FAST
from tests.voice.conftest import GatewayStarter, start_gateway

pytestmark = pytest.mark.slow
__all__ = ["start_gateway"]
CLIENT = Path(__file__).resolve().parents[2] / "docs" / "example_client.py"


async def test_the_documented_client_follows_an_operators_stream(start_gateway: GatewayStarter) -> None:
    service = await start_gateway(None)
    assert service.gateway is not None and service.desktop is not None
    AuthService(service.engine, hasher=FAST).add_user("op1001", "operator", "pw")
    base = f"http://{service.settings.http.host}:{service.settings.http.port}"
    client = await asyncio.create_subprocess_exec(
        sys.executable, str(CLIENT), base, "op1001",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert client.stdin is not None and client.stdout is not None
        client.stdin.write(b"pw\n")
        await client.stdin.drain()
        for _ in range(100):  # its socket is open
            if service.desktop.hub.count("op1001"):
                break
            await asyncio.sleep(0.05)
        bus = service.gateway.bus
        bus.emit("call.offered", "c1", operator_id="op1001", queue="zh", caller_number="13800138000")
        final = {"segment_id": "s1", "speaker": "caller", "start_ms": 0, "end_ms": 900, "confidence": 0.9}
        bus.emit("transcript.final", "c1", text="我家在海淀区", **final)
        lines = [(await asyncio.wait_for(client.stdout.readline(), 10)).decode().strip() for _ in range(2)]
        assert lines == ["call.offered", "transcript.final 我家在海淀区"]
    finally:
        client.kill()
        await client.wait()
