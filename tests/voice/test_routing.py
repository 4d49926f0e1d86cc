"""Routing with real phones: queues by skill, longest idle first, ring-out skip, three-way interpreter calls,
callbacks after the maximum wait. Operators and the interpreter centre are pjsua2 phones registered to Asterisk."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from hotline.service import GatewayService
from ivr_flows.port import RouteOutcome, RouteRequest
from tests.support.asterisk_fixture import AsteriskFactory
from tests.support.audio import make_tone_wav, tone_level_dbfs
from tests.support.ports import free_port
from tests.voice.conftest import GatewayStarter, entry_uri, registered
from tests.voice.test_calls import assert_nothing_left
from tools.softphone.driver import Softphone
from voice.ari import AriRestClient, Bridge
from voice.asterisk.instance import AsteriskInstance
from voice.operators import Presence
from voice.session import CallSession

pytestmark = pytest.mark.slow


class BeepAnnouncer:
    def __init__(self) -> None:
        self.positions: list[tuple[int, float]] = []

    def position(self, position: int, expected_wait_s: float) -> Sequence[str]:
        self.positions.append((position, expected_wait_s))
        return ["sound:beep"]

    def callback_recorded(self) -> Sequence[str]:
        return ["sound:vm-goodbye"]


def routing_handler(request: RouteRequest, outcomes: list[RouteOutcome], announcer: BeepAnnouncer | None = None):  # type: ignore[no-untyped-def]
    async def handler(session: CallSession) -> None:
        await session.answer()
        outcomes.append(await session.route(request, announcer or BeepAnnouncer()))
        await session.hangup()

    return handler


async def bridges_when(
    ari: AriRestClient, settled: Callable[[list[Bridge]], bool], timeout: float = 5.0
) -> list[Bridge]:
    """Asterisk's bridges once `settled` holds of them, or as they are when `timeout` runs out."""
    deadline = time.monotonic() + timeout
    bridges = await ari.list_bridges()
    while not settled(bridges) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        bridges = await ari.list_bridges()
    return bridges


def set_idle(service: GatewayService, **idle_ago_s: float) -> None:
    assert service.gateway is not None and service.gateway.routing is not None
    pool = service.gateway.routing.router.pool
    for operator_id, ago in idle_ago_s.items():
        pool.get(operator_id).idle_since = time.monotonic() - ago


async def test_longest_idle_skilled_operator_answers(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    outcomes: list[RouteOutcome] = []
    request = RouteRequest(queue="zh", skills=("zh",), language="zh", ring_timeout_s=5)
    service = await start_gateway(routing_handler(request, outcomes))
    async with registered(asterisk, tmp_path, "op1001", "op1002") as (op1001, op1002):
        set_idle(service, op1001=10, op1002=100)  # op1002 has waited longest
        call = await phone.call(entry_uri(asterisk))
        incoming = await op1002.wait_incoming(timeout=10)
        await op1002.wait_state(incoming, "CONFIRMED", timeout=5)
        assert not op1001.find("incoming")
        await op1002.hangup(incoming)
        await phone.wait_state(call, "DISCONNECTED", timeout=5)
    assert [(o.status, o.operator_id) for o in outcomes] == [("connected", "op1002")]


async def test_skill_decides_and_unanswered_operator_is_skipped(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    outcomes: list[RouteOutcome] = []
    request = RouteRequest(queue="zh", skills=("zh",), language="zh", ring_timeout_s=2)
    service = await start_gateway(routing_handler(request, outcomes))
    async with (
        registered(asterisk, tmp_path, "op1001", auto_answer=False) as (silent,),
        registered(asterisk, tmp_path, "op1002") as (answering,),
    ):
        set_idle(service, op1001=100, op1002=10)  # the silent one is first in line
        started = time.monotonic()
        call = await phone.call(entry_uri(asterisk))
        await silent.wait_incoming(timeout=10)
        incoming = await answering.wait_incoming(timeout=10)
        assert time.monotonic() - started >= 1.8  # it rang the first operator for its 2 s
        await answering.wait_state(incoming, "CONFIRMED", timeout=5)
        await answering.hangup(incoming)
        await phone.wait_state(call, "DISCONNECTED", timeout=5)
    assert outcomes[0].status == "connected"
    assert outcomes[0].operator_id == "op1002"
    assert "operator.no_answer:op1001" in outcomes[0].events


async def test_english_caller_reaches_only_the_english_speaker(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    outcomes: list[RouteOutcome] = []
    request = RouteRequest(queue="en", skills=("en",), language="en", ring_timeout_s=5)
    service = await start_gateway(routing_handler(request, outcomes))
    async with registered(asterisk, tmp_path, "op1001", "op1002") as (op1001, op1002):
        set_idle(service, op1001=1, op1002=100)  # op1002 idles longest but speaks no English
        call = await phone.call(entry_uri(asterisk))
        incoming = await op1001.wait_incoming(timeout=10)
        await op1001.wait_state(incoming, "CONFIRMED", timeout=5)
        await op1001.hangup(incoming)
        await phone.wait_state(call, "DISCONNECTED", timeout=5)
        assert not op1002.find("incoming")
    assert outcomes[0].operator_id == "op1001"


async def test_three_way_call_everyone_hears_everyone(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path, ari: AriRestClient
) -> None:
    """Caller, operator and interpreter each play a tone of their own; each recording holds the other two."""
    tones = {"caller": 440.0, "operator": 1000.0, "interpreter": 1700.0}
    wavs = {who: make_tone_wav(tmp_path / f"{who}-tone.wav", freq, 30.0, rate=8000) for who, freq in tones.items()}
    outcomes: list[RouteOutcome] = []
    request = RouteRequest(queue="zh", skills=("zh",), language="xx", interpreter_language="xx", ring_timeout_s=5)
    service = await start_gateway(routing_handler(request, outcomes))
    assert service.gateway is not None
    events = service.gateway.bus.subscribe()
    async with registered(asterisk, tmp_path, "op1002", "interpreters") as (operator, centre):
        heard = {who: tmp_path / f"{who}-heard.wav" for who in tones}
        call = await phone.call(entry_uri(asterisk), record=str(heard["caller"]))
        await phone.play(call, wavs["caller"], loop=True)
        op_call = await operator.wait_incoming(timeout=10)
        await operator.record(op_call, heard["operator"])
        await operator.play(op_call, wavs["operator"], loop=True)
        centre_call = await centre.wait_incoming(timeout=10)
        await centre.record(centre_call, heard["interpreter"])
        await centre.play(centre_call, wavs["interpreter"], loop=True)
        await centre.wait_state(centre_call, "CONFIRMED", timeout=5)
        # the centre's phone confirms on the ACK; the gateway bridges the leg a moment later, on Asterisk's event
        bridges = await bridges_when(ari, lambda found: len(found) == 1 and len(found[0].channels) == 3)
        assert len(bridges) == 1 and len(bridges[0].channels) == 3, bridges
        assert bridges[0].technology == "softmix"
        await asyncio.sleep(3.0)
        await operator.hangup(op_call)  # the operator ends the call: everyone is released
        await phone.wait_state(call, "DISCONNECTED", timeout=5)
        await centre.wait_state(centre_call, "DISCONNECTED", timeout=5)
        for who in tones:
            await (operator if who == "operator" else centre if who == "interpreter" else phone).wait_recorded(
                op_call if who == "operator" else centre_call if who == "interpreter" else call
            )
    assert outcomes[0].interpreter_joined
    published = []
    while events.pending():
        published.append(await events.get())
    published = [e for e in published if e.type != "call.recorded"]  # stored after the end, whenever it is done
    types = [e.type for e in published]
    assert types[-4:] == ["call.offered", "call.answered", "interpreter.joined", "call.ended"], types
    answered = published[-3]
    assert answered.data["operator_id"] == "op1002" and answered.data["caller_number"] == "13800138000"
    for listener, wav in heard.items():
        for speaker, freq in tones.items():
            if speaker == listener:
                continue
            level = tone_level_dbfs(wav, freq, start=1.0)
            assert level > -35, f"{listener} did not hear the {speaker} ({level:.1f} dBFS at {freq} Hz)"
    await assert_nothing_left(ari, asterisk)


async def test_interpreter_busy_keeps_caller_and_operator_together(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    tones = {"caller": 440.0, "operator": 1000.0}
    wavs = {who: make_tone_wav(tmp_path / f"{who}-tone.wav", freq, 30.0, rate=8000) for who, freq in tones.items()}
    outcomes: list[RouteOutcome] = []
    request = RouteRequest(queue="zh", skills=("zh",), language="sw", interpreter_language="sw", ring_timeout_s=5)
    await start_gateway(routing_handler(request, outcomes))
    async with (
        registered(asterisk, tmp_path, "op1002") as (operator,),
        registered(asterisk, tmp_path, "interpreters", answer_code=486) as (centre,),
    ):
        heard = tmp_path / "caller-heard.wav"
        call = await phone.call(entry_uri(asterisk), record=str(heard))
        await phone.play(call, wavs["caller"], loop=True)
        op_call = await operator.wait_incoming(timeout=10)
        op_heard = tmp_path / "operator-heard.wav"
        await operator.record(op_call, op_heard)
        await operator.play(op_call, wavs["operator"], loop=True)
        await centre.wait_incoming(timeout=10)  # the centre was called, and said busy
        await asyncio.sleep(2.5)
        assert phone.find("state", call=call, state="DISCONNECTED") == []
        await operator.hangup(op_call)
        await phone.wait_state(call, "DISCONNECTED", timeout=5)
        await phone.wait_recorded(call)
        await operator.wait_recorded(op_call)
    assert outcomes[0].status == "connected" and not outcomes[0].interpreter_joined
    assert "interpreter.failed" in outcomes[0].events
    assert tone_level_dbfs(heard, 1000.0, start=1.0) > -35
    assert tone_level_dbfs(op_heard, 440.0, start=1.0) > -35


async def test_no_operator_free_announces_then_records_callback(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    outcomes: list[RouteOutcome] = []
    announcer = BeepAnnouncer()
    request = RouteRequest(
        queue="zh", skills=("zh",), language="zh", max_wait_s=4.0, announce_every_s=1.0, ring_timeout_s=2
    )
    service = await start_gateway(routing_handler(request, outcomes, announcer))
    assert service.gateway is not None and service.gateway.routing is not None
    pool = service.gateway.routing.router.pool
    await pool.set_presence("op1001", Presence.AWAY)
    await pool.set_presence("op1002", Presence.AWAY)
    try:
        call = await phone.call(entry_uri(asterisk))
        await phone.wait_state(call, "DISCONNECTED", timeout=15)
    finally:
        await pool.set_presence("op1001", Presence.AVAILABLE)
        await pool.set_presence("op1002", Presence.AVAILABLE)
    assert outcomes[0].status == "callback_recorded"
    assert len(announcer.positions) >= 2 and announcer.positions[0][0] == 1
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'hotline.db'}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select caller_number, language, queue from callback_requests")).all()
    assert [tuple(r) for r in rows] == [("13800138000", "zh", "zh")]


async def test_caller_hangs_up_while_queued_or_talking_leaves_nothing(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path, ari: AriRestClient
) -> None:
    outcomes: list[RouteOutcome] = []
    request = RouteRequest(queue="zh", skills=("zh",), language="zh", max_wait_s=30, ring_timeout_s=5)
    service = await start_gateway(routing_handler(request, outcomes))
    assert service.gateway is not None and service.gateway.routing is not None
    pool = service.gateway.routing.router.pool
    await pool.set_presence("op1001", Presence.AWAY)
    # 1) while queued (the only zh operator left is away too)
    await pool.set_presence("op1002", Presence.AWAY)
    call = await phone.call(entry_uri(asterisk))
    await phone.wait_state(call, "CONFIRMED", timeout=5)
    await asyncio.sleep(1.0)
    await phone.hangup(call)
    await assert_nothing_left(ari, asterisk)
    assert service.gateway.routing.router.waiting() == 0
    # 2) while talking
    async with registered(asterisk, tmp_path, "op1002") as (operator,):
        await pool.set_presence("op1002", Presence.AVAILABLE)
        call = await phone.call(entry_uri(asterisk))
        op_call = await operator.wait_incoming(timeout=10)
        await operator.wait_state(op_call, "CONFIRMED", timeout=5)
        for _ in range(40):  # the phone may see its 200 OK before the gateway sees the channel answered
            if pool.get("op1002").presence == Presence.ON_CALL:
                break
            await asyncio.sleep(0.05)
        assert pool.get("op1002").presence == Presence.ON_CALL
        await phone.hangup(call)
        await operator.wait_state(op_call, "DISCONNECTED", timeout=5)  # the operator's leg is hung up too
    await assert_nothing_left(ari, asterisk)
    assert pool.get("op1002").presence == Presence.AVAILABLE  # wrap-up 0 s in tests
    await pool.set_presence("op1001", Presence.AVAILABLE)
    assert outcomes == []  # both calls ended by the caller: the script was cancelled


async def test_desk_operations_mid_call_interpreter_transfer_hangup(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path, ari: AriRestClient
) -> None:
    """What the operator desktop does during a call: add and drop the interpreter, transfer, hang up."""
    outcomes: list[RouteOutcome] = []
    request = RouteRequest(queue="zh", skills=("zh",), language="zh", ring_timeout_s=5)
    service = await start_gateway(routing_handler(request, outcomes))
    gateway = service.gateway
    assert gateway is not None
    async with registered(asterisk, tmp_path, "op1001", "op1002", "interpreters") as (op1001, op1002, centre):
        set_idle(service, op1001=1, op1002=100)
        call = await phone.call(entry_uri(asterisk))
        op_call = await op1002.wait_incoming(timeout=10)
        await op1002.wait_state(op_call, "CONFIRMED", timeout=5)
        await asyncio.sleep(0.3)
        [current] = gateway.calls()
        assert current["operator_id"] == "op1002" and not current["interpreter"]

        assert await gateway.add_interpreter(str(current["call_id"]), "fr")
        centre_call = await centre.wait_incoming(timeout=10)
        assert gateway.calls()[0]["interpreter"]
        assert await gateway.drop_interpreter(str(current["call_id"]))
        await centre.wait_state(centre_call, "DISCONNECTED", timeout=5)

        assert await gateway.transfer_call(str(current["call_id"]), "op1001")
        new_call = await op1001.wait_incoming(timeout=10)
        await op1002.wait_state(op_call, "DISCONNECTED", timeout=5)  # the first operator left
        assert gateway.calls()[0]["operator_id"] == "op1001"
        assert phone.find("state", call=call, state="DISCONNECTED") == []  # the caller stayed

        await gateway.hangup_call(str(current["call_id"]))
        await phone.wait_state(call, "DISCONNECTED", timeout=5)
        await op1001.wait_state(new_call, "DISCONNECTED", timeout=5)
    await assert_nothing_left(ari, asterisk)


async def test_phone_that_is_not_registered_is_not_offered_calls(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    outcomes: list[RouteOutcome] = []
    request = RouteRequest(queue="zh", skills=("zh",), language="zh", ring_timeout_s=5)
    service = await start_gateway(routing_handler(request, outcomes))
    assert service.gateway is not None and service.gateway.routing is not None
    pool = service.gateway.routing.router.pool
    async with registered(asterisk, tmp_path, "op1002") as (op1002,):
        for _ in range(50):
            if pool.get("op1002").registered and pool.get("op1001").registered is False:
                break
            await asyncio.sleep(0.05)
        assert (pool.get("op1001").registered, pool.get("op1002").registered) == (False, True)
        set_idle(service, op1001=100, op1002=1)  # the unregistered one would be first in line
        call = await phone.call(entry_uri(asterisk))
        incoming = await op1002.wait_incoming(timeout=10)
        await op1002.wait_state(incoming, "CONFIRMED", timeout=5)  # answered, then hung up (not declined)
        await op1002.hangup(incoming)
        await phone.wait_state(call, "DISCONNECTED", timeout=5)
    assert outcomes[0].operator_id == "op1002" and outcomes[0].events == ("operator.hangup",)
    for _ in range(50):  # unregistering (the phone quit) is seen too
        if pool.get("op1002").registered is False:
            break
        await asyncio.sleep(0.05)
    assert pool.get("op1002").registered is False


async def test_an_operator_phone_at_a_static_contact_takes_calls_without_registering(
    asterisk_factory: AsteriskFactory, start_gateway: GatewayStarter, tmp_path: Path
) -> None:
    port = free_port(socket.SOCK_DGRAM)  # nothing listens there: the phone is away
    operators = [
        {"id": "op1001", "skills": ["zh"]},
        {"id": "op1003", "skills": ["zh"], "contact": f"sip:op1003@127.0.0.1:{port}"},
    ]
    instance = await asterisk_factory(telephony={"operators": operators})
    outcomes: list[RouteOutcome] = []
    request = RouteRequest(queue="zh", skills=("zh",), language="zh", ring_timeout_s=5)
    service = await start_gateway(
        routing_handler(request, outcomes), instance=instance, telephony={"operators": operators}
    )
    assert service.gateway is not None and service.gateway.routing is not None
    pool = service.gateway.routing.router.pool
    async with Softphone.open(port, log_path=tmp_path / "op1003.log", user="op1003") as desk_phone:
        await desk_phone.auto_answer(True)
        for _ in range(60):  # the poll of the phones' state has seen the fixed contact
            if pool.get("op1003").registered:
                break
            await asyncio.sleep(0.1)
        assert pool.get("op1003").registered and not pool.get("op1001").registered
        async with Softphone.open(log_path=tmp_path / "caller.log", user="13800138000") as caller:
            call = await caller.call(entry_uri(instance))
            incoming = await desk_phone.wait_incoming(timeout=10)
            await desk_phone.wait_state(incoming, "CONFIRMED", timeout=5)
            await desk_phone.hangup(incoming)
            await caller.wait_state(call, "DISCONNECTED", timeout=5)
    assert [(o.status, o.operator_id) for o in outcomes] == [("connected", "op1003")]
