"""The shipped 12345 flow with real calls: every language of the menu, the service menu, invalid entries,
a publish during a call, and hang-ups at each stage. Operators and the interpreter centre are registered phones."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from events.bus import CallEvent, Subscription
from hotline.service import GatewayService
from tests.voice.conftest import GatewayStarter, entry_uri, registered
from tests.voice.test_calls import assert_nothing_left
from tools.softphone.driver import Softphone
from voice.ari import AriRestClient
from voice.asterisk.instance import AsteriskInstance

pytestmark = pytest.mark.slow

SHIPPED_FLOW = Path(__file__).resolve().parents[2] / "ivr_flows" / "flows" / "12345.yaml"


async def next_event(events: Subscription, type_: str, timeout: float = 20) -> CallEvent:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {type_} event within {timeout}s"
        event = await asyncio.wait_for(events.get(), left)
        if event.type == type_:
            return event


async def start_flow_gateway(start_gateway: GatewayStarter) -> tuple[GatewayService, Subscription]:
    service = await start_gateway(None)  # default handler: the published flow of the dialled number
    assert service.gateway is not None and service.flows is not None
    return service, service.gateway.bus.subscribe()


async def dial_and_press(phone: Softphone, asterisk: AsteriskInstance, *entries: str) -> str:
    """Call 12345 and key each entry after a short pause (menus take type-ahead and barge-in)."""
    call = await phone.call(entry_uri(asterisk))
    await phone.wait_event("media_active", call=call, timeout=5)
    for entry in entries:
        await asyncio.sleep(0.6)
        await phone.dtmf(call, entry)
    return call


async def test_mandarin_citizen_reaches_a_mandarin_operator_through_the_service_menu(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    _, events = await start_flow_gateway(start_gateway)
    async with registered(asterisk, tmp_path, "op1002") as (operator,):
        call = await dial_and_press(phone, asterisk, "1", "1")
        offered = await next_event(events, "call.offered")
        incoming = await operator.wait_incoming(timeout=15)
        await operator.wait_state(incoming, "CONFIRMED", timeout=5)
        answered = await next_event(events, "call.answered")
        await operator.hangup(incoming)
        await phone.wait_state(call, "DISCONNECTED", timeout=10)
    assert offered.data["queue"] == "citizens"
    assert offered.data["language"] == "zh"
    assert offered.data["flow_version"] == 1
    path = offered.data["ivr_path"]
    assert path[:2] == ["welcome", "language_menu:1"] and "service_menu:1" in path
    assert answered.data["operator_id"] in ("op1001", "op1002")


async def test_every_menu_language_is_served_end_to_end(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    """2 English → the English-speaking operator; 3 to 9 (no in-house operator configured here) and 0 → a Mandarin
    operator plus the interpreter centre for that language."""
    service, events = await start_flow_gateway(start_gateway)
    expected = {"2": "en", "3": "fr", "4": "de", "5": "ru", "6": "es", "7": "ar", "8": "ja", "9": "ko", "0": "other"}
    seen: dict[str, tuple[str, str | None, str]] = {}
    async with (
        registered(asterisk, tmp_path, "op1001", "op1002", "interpreters") as (op1001, op1002, centre),
        Softphone.open(log_path=tmp_path / "caller.log", user="13700000000") as phone,
    ):
        for digit, language in expected.items():
            mark = {p: p.mark() for p in (op1001, op1002, centre)}
            call = await dial_and_press(phone, asterisk, digit)
            answered = await next_event(events, "call.answered")
            operator = op1001 if answered.data["operator_id"] == "op1001" else op1002
            op_call = await operator.wait_incoming(timeout=5, since=mark[operator])
            await operator.wait_state(op_call, "CONFIRMED", timeout=5)
            if language != "en":
                await centre.wait_incoming(timeout=10, since=mark[centre])
                await next_event(events, "interpreter.joined")
            await operator.hangup(op_call)
            await phone.wait_state(call, "DISCONNECTED", timeout=10)
            data = answered.data
            seen[digit] = (data["language"], data["interpreter_language"], data["operator_id"])
            await next_event(events, "call.ended")
    assert seen["2"] == ("en", None, "op1001")  # the only operator with English
    for digit, language in expected.items():
        if digit != "2":
            assert seen[digit][:2] == (language, language), (digit, seen[digit])
    assert service.gateway is not None and service.gateway.active_calls == 0


async def test_three_invalid_entries_end_in_the_mandarin_queue_not_a_hang_up(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    _, events = await start_flow_gateway(start_gateway)
    async with registered(asterisk, tmp_path, "op1002") as (operator,):
        call = await dial_and_press(phone, asterisk, "*", "*", "*")
        offered = await next_event(events, "call.offered", timeout=40)
        incoming = await operator.wait_incoming(timeout=15)
        await operator.wait_state(incoming, "CONFIRMED", timeout=5)  # a hang-up before the answer is a decline
        await operator.hangup(incoming)
        await phone.wait_state(call, "DISCONNECTED", timeout=10)
    assert offered.data["language"] == "zh"
    assert offered.data["ivr_path"][1] == "language_menu[*,*,*]"


async def test_publish_during_a_call_keeps_its_version_and_the_next_call_gets_the_new_one(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    service, events = await start_flow_gateway(start_gateway)
    assert service.flows is not None
    # Version 2 swaps the service menu's 1 (citizens) and 2 (enterprises).
    v1 = SHIPPED_FLOW.read_text(encoding="utf-8")
    v2 = (
        v1.replace('"1": queue_citizens', '"1": @E', 1)
        .replace('"2": queue_enterprises', '"2": queue_citizens', 1)
        .replace('"1": @E', '"1": queue_enterprises', 1)
    )
    assert v2 != v1
    async with (
        registered(asterisk, tmp_path, "op1002") as (operator,),
        Softphone.open(log_path=tmp_path / "first.log", user="13711111111") as first,
        Softphone.open(log_path=tmp_path / "second.log", user="13722222222") as second,
    ):
        first_call = await dial_and_press(first, asterisk, "1")  # in the service menu, on version 1
        await asyncio.sleep(0.5)
        published = await asyncio.to_thread(
            service.flows.service.publish, v2, "12345.yaml", author="test-admin", comment="swap 1 and 2"
        )
        assert published.version.version == 2
        await first.dtmf(first_call, "1")
        offered_first = await next_event(events, "call.offered")
        op_call = await operator.wait_incoming(timeout=10)
        await operator.wait_state(op_call, "CONFIRMED", timeout=5)  # a hang-up before the answer is a decline
        await operator.hangup(op_call)
        await first.wait_state(first_call, "DISCONNECTED", timeout=10)

        mark = operator.mark()
        second_call = await dial_and_press(second, asterisk, "1", "1")
        offered_second = await next_event(events, "call.offered")
        op_call = await operator.wait_incoming(timeout=10, since=mark)
        await operator.wait_state(op_call, "CONFIRMED", timeout=5)
        await operator.hangup(op_call)
        await second.wait_state(second_call, "DISCONNECTED", timeout=10)
    assert (offered_first.data["flow_version"], offered_first.data["queue"]) == (1, "citizens")
    assert (offered_second.data["flow_version"], offered_second.data["queue"]) == (2, "enterprises")


@pytest.mark.parametrize("stage", ["welcome", "language_menu", "service_menu", "queued"])
async def test_caller_hang_up_at_each_stage_leaves_nothing(
    stage: str,
    start_gateway: GatewayStarter,
    asterisk: AsteriskInstance,
    phone: Softphone,
    ari: AriRestClient,
) -> None:
    service, events = await start_flow_gateway(start_gateway)
    assert service.gateway is not None and service.gateway.routing is not None
    pool = service.gateway.routing.router.pool
    from voice.operators import Presence

    for op in ("op1001", "op1002"):
        await pool.set_presence(op, Presence.AWAY)  # nobody answers: "queued" waits in the queue
    try:
        keys = {"welcome": (), "language_menu": (), "service_menu": ("1",), "queued": ("1", "1")}[stage]
        call = await dial_and_press(phone, asterisk, *keys)
        await asyncio.sleep({"welcome": 0.5, "language_menu": 6.0, "service_menu": 1.5, "queued": 4.0}[stage])
        await phone.hangup(call)
        ended = await next_event(events, "call.ended")
        assert ended.data["reason"] == "caller_hangup"
        await assert_nothing_left(ari, asterisk)
        assert service.gateway.routing.router.waiting() == 0
    finally:
        for op in ("op1001", "op1002"):
            await pool.set_presence(op, Presence.AVAILABLE)
