"""The gateway keeps owning calls when Asterisk goes away: restarts, Asterisk down at start, bad credentials."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.support.asterisk_fixture import AsteriskFactory
from tests.voice.conftest import GatewayStarter, entry_uri
from tools.softphone.driver import Softphone
from voice.session import CallSession

pytestmark = pytest.mark.slow


async def answer_and_hold(session: CallSession) -> None:
    await session.answer()
    await session.gather(1, 5.0, 5.0, 5.0)
    await session.hangup()


async def place_call_and_press(phone: Softphone, uri: str) -> None:
    """A call the gateway answers, takes one digit from, and hangs up."""
    call = await phone.call(uri)
    await phone.wait_event("media_active", call=call, timeout=5)
    await phone.dtmf(call, "1")
    await phone.wait_state(call, "DISCONNECTED", timeout=5)


async def test_asterisk_restart_gateway_reconnects_and_answers_next_call(
    asterisk_factory: AsteriskFactory, start_gateway: GatewayStarter, tmp_path: Path
) -> None:
    instance = await asterisk_factory()
    service = await start_gateway(answer_and_hold, instance=instance)
    gateway = service.gateway
    assert gateway is not None
    async with Softphone.open(log_path=tmp_path / "phone.log") as phone:
        await place_call_and_press(phone, entry_uri(instance))

        await instance.restart()
        restarted = time.monotonic()
        await gateway.wait_ready(15)
        reconnect_s = time.monotonic() - restarted
        assert gateway.metrics.ari_reconnects._value.get() >= 1
        print(f"gateway ready {reconnect_s:.2f}s after Asterisk was back")

        await place_call_and_press(phone, entry_uri(instance))
    assert gateway.metrics.calls_total.labels(outcome="completed")._value.get() == 2


async def test_call_lost_in_an_asterisk_crash_is_ended_at_resync(
    asterisk_factory: AsteriskFactory, start_gateway: GatewayStarter, tmp_path: Path
) -> None:
    instance = await asterisk_factory()
    service = await start_gateway(answer_and_hold, instance=instance)
    gateway = service.gateway
    assert gateway is not None
    async with Softphone.open(log_path=tmp_path / "phone.log") as phone:
        call = await phone.call(entry_uri(instance))
        await phone.wait_event("media_active", call=call, timeout=5)
        assert gateway.active_calls == 1
        instance.kill_now()  # no StasisEnd, no BYE: the channel just vanishes
        await instance.start()
        await gateway.wait_ready(15)
        deadline = time.monotonic() + 5
        while gateway.active_calls and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert gateway.active_calls == 0  # the lost channel's session ended at the resync
        assert gateway.metrics.calls_total.labels(outcome="asterisk_lost")._value.get() == 1


async def test_asterisk_down_at_start_gateway_retries_without_crashing(
    asterisk_factory: AsteriskFactory, start_gateway: GatewayStarter, tmp_path: Path
) -> None:
    instance = await asterisk_factory(start=False)
    service = await start_gateway(answer_and_hold, instance=instance, wait=False)
    gateway = service.gateway
    assert gateway is not None
    await asyncio.sleep(2.0)
    assert not gateway.ready
    assert not service.failed.is_set()
    assert service.readiness() == {"ari": False, "database": True, "event_store": True}
    assert gateway.client.events.connect_failures >= 2  # it keeps trying

    await instance.start()
    await gateway.wait_ready(15)
    async with Softphone.open(log_path=tmp_path / "phone.log") as phone:
        await place_call_and_press(phone, entry_uri(instance))
