"""The SIP edge with real phones on other loopback addresses: callers are identified by source address only, and
P-Asserted-Identity is believed only from the configured carrier trunks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.support.asterisk_fixture import AsteriskFactory
from tools.softphone.driver import Softphone
from voice.asterisk.instance import AsteriskInstance

pytestmark = pytest.mark.slow

OUTSIDE, CALLERS, TRUNK = "127.0.0.2", "127.0.0.1", "127.0.0.3"


@pytest.fixture
async def edge(asterisk_factory: AsteriskFactory) -> AsteriskInstance:
    return await asterisk_factory(telephony={"caller_networks": [f"{CALLERS}/32"], "trusted_trunks": [f"{TRUNK}/32"]})


@pytest.fixture
async def stasis(edge: AsteriskInstance) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    """StasisStart channels of the instance's ARI application, as they arrive."""
    auth = f"{edge.ari_username}:{edge.ari_password}"
    url = f"ws://127.0.0.1:{edge.http_port}/ari/events?app={edge.settings.ari.app}&api_key={auth}"
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with websockets.connect(url) as events:

        async def pump() -> None:
            async for raw in events:
                event = json.loads(raw)
                if event["type"] == "StasisStart":
                    await queue.put(event["channel"])

        task = asyncio.create_task(pump())
        try:
            yield queue
        finally:
            task.cancel()


async def call_from(
    edge: AsteriskInstance, tmp_path: Path, host: str, user: str, headers: dict[str, str] | None = None
) -> tuple[Softphone, str]:
    phone = await Softphone.start(log_path=tmp_path / f"{host}-{user}.log", user=user, host=host)
    call = await phone.call(f"sip:12345@127.0.0.1:{edge.sip_port}", headers=headers or {})
    return phone, call


async def hang_up_in_asterisk(edge: AsteriskInstance, channel: dict[str, Any]) -> None:
    async with httpx.AsyncClient(auth=(edge.ari_username, edge.ari_password)) as ari:
        await ari.delete(f"{edge.ari_url}/channels/{channel['id']}")


@pytest.mark.parametrize("user", ["callers", "13800138000", "trunks"])
async def test_a_caller_outside_caller_networks_is_refused_whatever_its_from_user(
    edge: AsteriskInstance, stasis: asyncio.Queue[dict[str, Any]], tmp_path: Path, user: str
) -> None:
    phone, call = await call_from(edge, tmp_path, OUTSIDE, user)
    try:
        ended = await phone.wait_state(call, "DISCONNECTED", timeout=10)
        assert ended["code"] in (401, 403, 407), ended
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(stasis.get(), 1.0)  # the call never reached the gateway
    finally:
        await phone.close(check=False)


async def test_identity_headers_count_only_from_trusted_trunks(
    edge: AsteriskInstance, stasis: asyncio.Queue[dict[str, Any]], tmp_path: Path
) -> None:
    forged = {"P-Asserted-Identity": "<sip:01066668888@127.0.0.1>"}
    phone, call = await call_from(edge, tmp_path, CALLERS, "13800138000", forged)
    try:
        channel = await asyncio.wait_for(stasis.get(), 10)
        assert channel["name"].startswith("PJSIP/callers-")
        assert channel["caller"]["number"] == "13800138000"  # the forged header was ignored
        await hang_up_in_asterisk(edge, channel)
        await phone.wait_state(call, "DISCONNECTED", timeout=10)
    finally:
        await phone.close(check=False)

    trunk, call = await call_from(edge, tmp_path, TRUNK, "gw", {"P-Asserted-Identity": "<sip:13911112222@carrier>"})
    try:
        channel = await asyncio.wait_for(stasis.get(), 10)
        assert channel["name"].startswith("PJSIP/trunks-")
        assert channel["caller"]["number"] == "13911112222"  # the carrier's word for who is calling
        await hang_up_in_asterisk(edge, channel)
        await trunk.wait_state(call, "DISCONNECTED", timeout=10)
    finally:
        await trunk.close(check=False)
