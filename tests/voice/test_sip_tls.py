"""Operators' phones over SIP TLS with SRTP media (pjsua2 with SRTP mandatory and the gateway's self-signed
certificate as its only trusted CA), while callers stay on UDP: the call connects and both parties hear each
other."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from ivr_flows.port import RouteOutcome, RouteRequest
from tests.support.asterisk_fixture import AsteriskFactory
from tests.support.audio import make_tone_wav, tone_level_dbfs
from tests.support.ports import free_port
from tests.voice.conftest import GatewayStarter, entry_uri
from tests.voice.test_routing import routing_handler
from tools.softphone.driver import Softphone
from voice.operators import Presence

pytestmark = pytest.mark.slow


def free_tcp_port() -> int:
    return free_port()  # below the kernel's outgoing ports (tests/support/ports.py)


async def test_an_operator_on_tls_and_srtp_talks_to_a_caller_on_udp(
    asterisk_factory: AsteriskFactory, start_gateway: GatewayStarter, tmp_path: Path
) -> None:
    tls_port = free_tcp_port()
    instance = await asterisk_factory(asterisk={"sip_tls_port": tls_port})
    cert, key = instance.runtime_dir / "tls" / "sip.crt", instance.runtime_dir / "tls" / "sip.key"
    assert cert.is_file() and stat.S_IMODE(key.stat().st_mode) == 0o600
    outcomes: list[RouteOutcome] = []
    request = RouteRequest(queue="zh", skills=("zh",), language="zh", ring_timeout_s=5)
    service = await start_gateway(routing_handler(request, outcomes), instance=instance)
    assert service.gateway is not None and service.gateway.routing is not None
    await service.gateway.routing.router.pool.set_presence("op1001", Presence.AWAY)
    tones = {"caller": 440.0, "operator": 1000.0}
    wavs = {who: make_tone_wav(tmp_path / f"{who}.wav", freq, 30.0, rate=8000) for who, freq in tones.items()}
    heard, op_heard = tmp_path / "caller-heard.wav", tmp_path / "operator-heard.wav"
    operator = await Softphone.start(log_path=tmp_path / "op1002.log", user="op1002", tls_ca=cert)
    try:
        registered = await operator.account(
            user="op1002",
            password=instance.secrets.operator_password("op1002"),
            registrar=f"sip:127.0.0.1:{tls_port};transport=tls",
            tls=True,
        )
        assert registered is not None and registered["ok"]
        await operator.auto_answer(True)
        async with Softphone.open(log_path=tmp_path / "caller.log", user="13800138000") as caller:
            call = await caller.call(entry_uri(instance), record=str(heard))
            await caller.play(call, wavs["caller"], loop=True)
            incoming = await operator.wait_event("incoming", timeout=10)
            assert "transport=tls" in str(incoming["request_line"]).lower(), incoming  # the INVITE came over TLS
            op_call = str(incoming["call"])
            await operator.wait_state(op_call, "CONFIRMED", timeout=10)  # SRTP is mandatory on this phone
            await operator.record(op_call, op_heard)
            await operator.play(op_call, wavs["operator"], loop=True)
            await asyncio.sleep(3.0)
            await operator.hangup(op_call)
            await caller.wait_state(call, "DISCONNECTED", timeout=10)
            await caller.wait_recorded(call)
            await operator.wait_recorded(op_call)
    finally:
        await operator.close(check=False)
    assert [(o.status, o.operator_id) for o in outcomes] == [("connected", "op1002")]
    assert tone_level_dbfs(heard, 1000.0, start=1.0) > -35  # the caller hears the operator through SRTP
    assert tone_level_dbfs(op_heard, 440.0, start=1.0) > -35  # and the other way round
