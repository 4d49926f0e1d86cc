"""Supervisors in a real call: the supervisor's phone is rung into an operator's call to listen, whisper or barge.
Caller, operator and supervisor each play a tone of their own; what each phone records proves who hears whom."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import structlog

from events.contract import CallFields
from ivr_flows.port import RouteRequest
from tests.support.audio import make_tone_wav, tone_power_dbfs
from tests.voice.conftest import GatewayStarter, entry_uri, registered
from tests.voice.test_calls import assert_nothing_left
from tests.voice.test_routing import routing_handler
from tools.softphone.driver import Softphone
from voice.ari import AriRestClient
from voice.asterisk.instance import AsteriskInstance
from voice.gateway import Gateway
from voice.legs import Leg
from voice.operators import Presence
from voice.supervision import NoSupervisorPhone, Supervision, SupervisorBusy

TONES = {"caller": 440.0, "operator": 1000.0, "supervisor": 1700.0}
HEARD_DBFS = -35.0  # a tone played at -10 dBFS arrives well above this through G.711 and the mixer
UNHEARD_DBFS = -45.0  # leakage of the other tones into a 0.1 s window stays below -55


async def wait_until(check, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def record_phase(
    phones: dict[str, tuple[Softphone, str]], folder: Path, phase: str, seconds: float = 2.5
) -> dict[str, Path]:
    """What each phone heard over `seconds`, one WAV per phone."""
    wavs = {who: folder / f"{phase}-{who}.wav" for who in phones}
    for who, (softphone, call) in phones.items():
        await softphone.record(call, wavs[who])
    await asyncio.sleep(seconds)
    for softphone, call in phones.values():
        await softphone.stop_record(call)
    return wavs


def tone_wavs(folder: Path) -> dict[str, Path]:
    """A minute of each party's own tone."""
    return {who: make_tone_wav(folder / f"{who}-tone.wav", freq, 60.0, rate=8000) for who, freq in TONES.items()}


async def routing_gateway(start_gateway: GatewayStarter) -> Gateway:
    """A gateway that queues every caller for a Mandarin operator."""
    request = RouteRequest(queue="zh", skills=("zh",), language="zh", ring_timeout_s=5)
    service = await start_gateway(routing_handler(request, []))
    assert isinstance(service.gateway, Gateway)
    return service.gateway


async def call_with(gateway: Gateway, operator_id: str) -> str:
    """The id of the call once it is connected to the operator."""
    await wait_until(lambda: bool(gateway.calls()) and gateway.calls()[0]["operator_id"] == operator_id)
    return str(gateway.calls()[0]["call_id"])


def hears(wavs: dict[str, Path], listener: str, speaker: str) -> float:
    return tone_power_dbfs(wavs[listener], TONES[speaker], start=0.5)


@pytest.mark.slow
async def test_supervisor_listens_then_whispers_then_barges(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path, ari: AriRestClient
) -> None:
    tones = tone_wavs(tmp_path)
    gateway = await routing_gateway(start_gateway)
    events = gateway.bus.subscribe()
    async with registered(asterisk, tmp_path, "op1002", "sup2001") as (operator, supervisor):
        call = await phone.call(entry_uri(asterisk))
        await phone.play(call, tones["caller"], loop=True)
        op_call = await operator.wait_incoming(timeout=10)
        await operator.wait_state(op_call, "CONFIRMED", timeout=5)
        await operator.play(op_call, tones["operator"], loop=True)
        call_id = await call_with(gateway, "op1002")

        with pytest.raises(NoSupervisorPhone):  # a supervisor without a phone gets nothing rung
            await gateway.monitor_call(call_id, "sup9999", "listen")

        assert await gateway.monitor_call(call_id, "sup2001", "listen")
        sup_call = await supervisor.wait_incoming(timeout=5)
        await supervisor.wait_state(sup_call, "CONFIRMED", timeout=5)
        await supervisor.play(sup_call, tones["supervisor"], loop=True)
        assert gateway.calls()[0]["monitors"] == {"sup2001": "listen"}
        phones = {"caller": (phone, call), "operator": (operator, op_call), "supervisor": (supervisor, sup_call)}

        listening = await record_phase(phones, tmp_path, "listen")
        assert await gateway.monitor_call(call_id, "sup2001", "whisper")  # the same phone: a mode change
        whispering = await record_phase(phones, tmp_path, "whisper")
        assert await gateway.monitor_call(call_id, "sup2001", "barge")
        barging = await record_phase(phones, tmp_path, "barge")
        assert supervisor.find("incoming") and len(supervisor.find("incoming")) == 1

        assert await gateway.end_monitor(call_id, "sup2001")
        await supervisor.wait_state(sup_call, "DISCONNECTED", timeout=5)
        assert gateway.calls()[0]["monitors"] == {}
        after = await record_phase({k: v for k, v in phones.items() if k != "supervisor"}, tmp_path, "after", 1.5)
        assert not await gateway.end_monitor(call_id, "sup2001")
        await operator.hangup(op_call)
        await phone.wait_state(call, "DISCONNECTED", timeout=5)

    levels = {
        phase: {f"{a}<-{b}": round(hears(wavs, a, b), 1) for a in wavs for b in TONES if a != b}
        for phase, wavs in {"listen": listening, "whisper": whispering, "barge": barging, "after": after}.items()
    }
    # The supervisor hears both sides throughout; the two parties always hear each other.
    for phase in ("listen", "whisper", "barge"):
        assert levels[phase]["supervisor<-caller"] > HEARD_DBFS, levels
        assert levels[phase]["supervisor<-operator"] > HEARD_DBFS, levels
    for phase in levels:
        assert levels[phase]["caller<-operator"] > HEARD_DBFS, levels
        assert levels[phase]["operator<-caller"] > HEARD_DBFS, levels
    # Who hears the supervisor: nobody, then only the operator, then both; nobody once they left.
    assert levels["listen"]["operator<-supervisor"] < UNHEARD_DBFS, levels
    assert levels["listen"]["caller<-supervisor"] < UNHEARD_DBFS, levels
    assert levels["whisper"]["operator<-supervisor"] > HEARD_DBFS, levels
    assert levels["whisper"]["caller<-supervisor"] < UNHEARD_DBFS, levels
    assert levels["barge"]["operator<-supervisor"] > HEARD_DBFS, levels
    assert levels["barge"]["caller<-supervisor"] > HEARD_DBFS, levels
    assert levels["after"]["operator<-supervisor"] < UNHEARD_DBFS, levels
    assert levels["after"]["caller<-supervisor"] < UNHEARD_DBFS, levels

    published = []  # the bus (and so the call's record) says who came in, how, and when they left
    while events.pending():
        published.append(await events.get())
    monitoring = [
        (e.data["supervisor_id"], e.data["mode"], e.data["operator_id"])
        for e in published
        if e.type == "call.monitored"
    ]
    assert monitoring == [
        ("sup2001", "listen", "op1002"),
        ("sup2001", "whisper", "op1002"),
        ("sup2001", "barge", "op1002"),
        ("sup2001", "left", "op1002"),
    ], monitoring
    await assert_nothing_left(ari, asterisk)


@pytest.mark.slow
async def test_a_listening_supervisor_follows_the_call_to_the_next_operator(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path, ari: AriRestClient
) -> None:
    tones = tone_wavs(tmp_path)
    gateway = await routing_gateway(start_gateway)
    async with registered(asterisk, tmp_path, "op1001", "op1002", "sup2001") as (op1001, op1002, supervisor):
        await gateway.routing.router.pool.set_presence("op1001", Presence.AWAY)  # type: ignore[union-attr]
        call = await phone.call(entry_uri(asterisk))
        await phone.play(call, tones["caller"], loop=True)
        first = await op1002.wait_incoming(timeout=10)
        await op1002.wait_state(first, "CONFIRMED", timeout=5)
        call_id = await call_with(gateway, "op1002")
        assert await gateway.monitor_call(call_id, "sup2001", "listen")
        sup_call = await supervisor.wait_incoming(timeout=5)
        await supervisor.wait_state(sup_call, "CONFIRMED", timeout=5)

        await gateway.routing.router.pool.set_presence("op1001", Presence.AVAILABLE)  # type: ignore[union-attr]
        assert await gateway.transfer_call(call_id, "op1001")
        second = await op1001.wait_incoming(timeout=5)
        await op1001.wait_state(second, "CONFIRMED", timeout=5)
        await op1002.wait_state(first, "DISCONNECTED", timeout=5)
        await op1001.play(second, tones["operator"], loop=True)  # the new operator's voice
        await wait_until(lambda: gateway.calls()[0]["monitors"] == {"sup2001": "listen"})
        await asyncio.sleep(0.5)  # the snoop on the new operator's channel comes up
        heard = await record_phase({"supervisor": (supervisor, sup_call)}, tmp_path, "followed")
        assert hears(heard, "supervisor", "operator") > HEARD_DBFS
        assert hears(heard, "supervisor", "caller") > HEARD_DBFS
        await phone.hangup(call)
        await supervisor.wait_state(sup_call, "DISCONNECTED", timeout=5)
    await wait_until(lambda: not gateway.calls())
    await assert_nothing_left(ari, asterisk)


@pytest.mark.slow
async def test_the_call_ending_hangs_the_supervisor_up(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path, ari: AriRestClient
) -> None:
    gateway = await routing_gateway(start_gateway)
    async with registered(asterisk, tmp_path, "op1002", "sup2001") as (operator, supervisor):
        call = await phone.call(entry_uri(asterisk))
        op_call = await operator.wait_incoming(timeout=10)
        await operator.wait_state(op_call, "CONFIRMED", timeout=5)
        call_id = await call_with(gateway, "op1002")
        assert await gateway.monitor_call(call_id, "sup2001", "listen")
        sup_call = await supervisor.wait_incoming(timeout=5)
        await phone.hangup(call)
        await supervisor.wait_state(sup_call, "DISCONNECTED", timeout=5)
        await operator.wait_state(op_call, "DISCONNECTED", timeout=5)
    await wait_until(lambda: not gateway.calls())
    await assert_nothing_left(ari, asterisk)


class _Desk:
    """A call's side as monitoring sees it, without Asterisk: for the refusals, which ring nothing."""

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.log = structlog.get_logger().bind(call_id=call_id)
        self.dialled: list[str] = []
        self.published: list[object] = []

    def about(self) -> CallFields:
        return {"call_id": self.call_id, "caller_number": "13800138000", "language": "zh"}

    def publish(self, event: object) -> None:
        self.published.append(event)

    async def dial(self, endpoint: str, role: str, timeout_s: float, on_ringing: object = None) -> Leg | None:
        self.dialled.append(endpoint)
        leg = Leg(f"{self.call_id}-{role}", role, endpoint)
        leg.on_answered()
        return leg

    async def snoop(self, channel_id: str, spy: str, whisper: str) -> Leg:
        leg = Leg(f"{channel_id}-spy-{whisper}", "spy", "spy")
        leg.on_answered()
        return leg

    async def own_bridge(self, bridge_id: str, channel_ids: object) -> None: ...

    async def join_bridge(self, bridge_id: str, channel_ids: object) -> None: ...

    async def drop_leg(self, leg: Leg) -> None:
        leg.on_gone("dropped")

    async def destroy_bridge(self, bridge_id: str) -> None: ...


async def test_one_phone_is_in_one_call_at_a_time_and_modes_are_checked() -> None:
    operator = Leg("op-leg", "operator", "PJSIP/op1002")
    operator.on_answered()
    supervision = Supervision({"sup2001": "PJSIP/sup2001"}, 5.0, lambda call_id: ("op1002", operator))
    first, second = _Desk("c1"), _Desk("c2")
    assert await supervision.monitor(first, "sup2001", "listen")
    with pytest.raises(SupervisorBusy, match="in call c1"):
        await supervision.monitor(second, "sup2001", "listen")
    with pytest.raises(ValueError, match="listen, whisper, barge"):
        await supervision.monitor(first, "sup2001", "shout")
    assert second.dialled == [] and first.dialled == ["PJSIP/sup2001"]
    assert await supervision.stop(first, "sup2001")
    assert await supervision.monitor(second, "sup2001", "barge")  # free again
    assert [(e.mode, e.call_id) for e in first.published + second.published] == [  # type: ignore[attr-defined]
        ("listen", "c1"),
        ("left", "c1"),
        ("barge", "c2"),
    ]
    await supervision.stop(second, "sup2001")
