"""Real calls: a pjsua2 softphone process dials 12345 on a real Asterisk, the gateway answers through ARI."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from events.bus import CallEvent, Subscription
from hotline.service import GatewayService
from ivr_flows.port import GatherResult
from tests.support.audio import active_speech_seconds, first_sound_offset, rms_dbfs, wav_duration
from tests.voice.conftest import GatewayStarter, entry_uri
from tools.softphone.driver import Softphone
from voice.ari import AriError, AriRestClient
from voice.asterisk.instance import AsteriskInstance
from voice.session import CallSession

pytestmark = pytest.mark.slow

LONG_PROMPT = ["sound:hello-world"] * 12  # ≈ 15 s of speech: long enough to hang up in the middle


def calls_total(service: GatewayService, outcome: str) -> float:
    assert service.gateway is not None
    return service.gateway.metrics.calls_total.labels(outcome=outcome)._value.get()


async def wait_calls_ended(service: GatewayService, outcome: str, count: int = 1, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while calls_total(service, outcome) < count:
        assert time.monotonic() < deadline, f"no call ended with outcome {outcome!r} within {timeout}s"
        await asyncio.sleep(0.05)
    assert service.gateway is not None
    assert service.gateway.active_calls == 0


async def assert_nothing_left(ari: AriRestClient, asterisk: AsteriskInstance) -> None:
    """No channel, bridge or playback of ours stays in Asterisk after a call."""
    deadline = time.monotonic() + 5
    while (await ari.list_channels() or await ari.list_bridges()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert await ari.list_channels() == []
    assert await ari.list_bridges() == []
    shown = await asterisk.rx("core show channels count")
    assert "0 active channels" in shown


async def test_caller_hears_greeting_and_prompts(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    service = await start_gateway(call={"script": "basic", "first_digit_timeout_s": 1.0})
    recording = tmp_path / "heard.wav"
    call = await phone.call(entry_uri(asterisk), record=str(recording))
    await phone.wait_state(call, "CONFIRMED", timeout=5)
    # greeting, digits prompt, 1 s for digits, goodbye, then the gateway hangs up
    await phone.wait_state(call, "DISCONNECTED", timeout=20)
    await phone.wait_recorded(call)
    await wait_calls_ended(service, "completed")

    assert wav_duration(recording) > 4.0
    assert active_speech_seconds(recording) > 2.5  # hello-world + vm-enter-num-to-call + vm-goodbye
    assert rms_dbfs(recording) > -35
    offset = first_sound_offset(recording)
    assert offset is not None and offset < 1.0  # the greeting starts as soon as the call is answered


async def test_asterisk_is_asked_not_to_send_the_events_no_call_reads(
    start_gateway: GatewayStarter, ari: AriRestClient
) -> None:
    service = await start_gateway(call={"script": "basic"})
    assert service.gateway is not None
    application = await ari.request("GET", f"/applications/{service.gateway.client.app}")
    refused = {event["type"] for event in application["events_disallowed"]}
    assert {"ChannelVarset", "ChannelStateChange", "PlaybackContinuing"} <= refused
    assert not refused & {"StasisStart", "StasisEnd", "ChannelDtmfReceived", "PlaybackFinished", "ChannelDestroyed"}


async def test_our_own_prompt_file_is_played(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    from tests.support.audio import make_tone_wav, tone_level_dbfs

    prompts = tmp_path / "prompts"
    prompts.mkdir()
    make_tone_wav(prompts / "tone-prompt.wav", 440.0, 2.0, rate=8000)

    async def handler(session: CallSession) -> None:
        await session.answer()
        await session.play("prompt:tone-prompt")
        await session.hangup()

    await start_gateway(handler, call={"prompts_dir": str(prompts)})
    recording = tmp_path / "heard.wav"
    call = await phone.call(entry_uri(asterisk), record=str(recording))
    await phone.wait_state(call, "DISCONNECTED", timeout=10)
    await phone.wait_recorded(call)
    assert active_speech_seconds(recording) > 1.6
    assert tone_level_dbfs(recording, 440.0) > tone_level_dbfs(recording, 1000.0) + 20


async def test_dtmf_digits_arrive_in_order_with_timeouts(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone
) -> None:
    entries: list[tuple[GatherResult, float]] = []

    async def handler(session: CallSession) -> None:
        await session.answer()
        for _ in range(4):
            result = await session.gather(
                4, first_timeout=4.0, inter_digit_timeout=1.0, total_timeout=10.0, terminator="#"
            )
            entries.append((result, time.monotonic()))
        await session.hangup()

    await start_gateway(handler)
    call = await phone.call(entry_uri(asterisk))
    await phone.wait_state(call, "CONFIRMED", timeout=5)
    await phone.wait_event("media_active", call=call)
    await phone.dtmf(call, "4711")  # entry 1: four digits → max_digits
    await phone.dtmf(call, "92#")  # entry 2: ended by the terminator
    await phone.dtmf(call, "3")  # entry 3: then silence → inter-digit timeout
    await phone.wait_state(call, "DISCONNECTED", timeout=15)  # entry 4: nothing → first-digit timeout

    got = [(result.digits, result.reason) for result, _ in entries]
    assert got == [("4711", "max_digits"), ("92", "terminator"), ("3", "timeout"), ("", "timeout")]
    third, third_done = entries[2]
    assert third.last_key_at is not None
    assert 0.9 <= third_done - third.last_key_at <= 1.5  # inter-digit timeout 1.0 s
    fourth_done = entries[3][1]
    assert 3.9 <= fourth_done - third_done <= 4.6  # first-digit timeout 4.0 s


async def test_key_press_interrupts_prompt_and_next_prompt_follows(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone
) -> None:
    interrupted: list[bool] = []

    async def handler(session: CallSession) -> None:
        await session.answer()
        interrupted.append(await session.play(LONG_PROMPT, interruptible=True))
        entry = await session.gather(1, 2.0, 1.0, 3.0)
        await session.play(f"digits:{entry.digits}")
        await session.hangup()

    service = await start_gateway(handler)
    call = await phone.call(entry_uri(asterisk))
    await phone.wait_event("media_active", call=call, timeout=5)
    await asyncio.sleep(1.0)
    pressed = time.monotonic()
    await phone.dtmf(call, "5")
    await phone.wait_state(call, "DISCONNECTED", timeout=8)
    assert interrupted == [True]
    assert time.monotonic() - pressed < 4  # far less than the 15 s prompt
    assert service.gateway is not None
    histogram = service.gateway.metrics.dtmf_to_prompt_seconds
    assert histogram._sum.get() > 0  # the read-back prompt started after the key


@pytest.mark.parametrize("moment", ["before_answer", "mid_prompt", "mid_digits"])
async def test_caller_hangs_up_at_any_moment_leaves_nothing(
    moment: str,
    start_gateway: GatewayStarter,
    asterisk: AsteriskInstance,
    ari: AriRestClient,
    phone: Softphone,
) -> None:
    reached = asyncio.Event()

    async def handler(session: CallSession) -> None:
        if moment == "before_answer":
            reached.set()
            await asyncio.sleep(30)
        await session.answer()
        if moment == "mid_prompt":
            reached.set()
            await session.play(LONG_PROMPT)
        reached.set()
        await session.gather(8, 30.0, 30.0, 60.0)
        raise AssertionError("the caller hung up: the script must not get here")

    service = await start_gateway(handler)
    call = await phone.call(entry_uri(asterisk))
    await asyncio.wait_for(reached.wait(), 5)
    await asyncio.sleep(0.8)
    if moment == "mid_digits":
        await phone.dtmf(call, "12")
    await phone.hangup(call)
    await wait_calls_ended(service, "caller_hangup")
    assert calls_total(service, "error") == 0
    await assert_nothing_left(ari, asterisk)


async def test_failure_in_one_call_does_not_touch_another(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    digits: list[str] = []

    async def handler(session: CallSession) -> None:
        await session.answer()
        if session.caller_number == "666":
            raise RuntimeError("bug in this call's script")
        entry = await session.gather(3, 8.0, 2.0, 10.0)
        digits.append(entry.digits)
        await session.hangup()

    service = await start_gateway(handler)
    async with (
        Softphone.open(log_path=tmp_path / "a.log", user="666") as crasher,
        Softphone.open(log_path=tmp_path / "b.log", user="13900000000") as citizen,
    ):
        good = await citizen.call(entry_uri(asterisk))
        await citizen.wait_event("media_active", call=good, timeout=5)
        bad = await crasher.call(entry_uri(asterisk))
        await crasher.wait_state(bad, "DISCONNECTED", timeout=5)  # the gateway hangs up the failed call
        await citizen.dtmf(good, "123")
        await citizen.wait_state(good, "DISCONNECTED", timeout=5)
    assert digits == ["123"]
    assert calls_total(service, "error") == 1
    assert calls_total(service, "completed") == 1


async def test_gateway_hangs_up_once_and_the_desk_hears_every_end(
    start_gateway: GatewayStarter,
    asterisk: AsteriskInstance,
    phone: Softphone,
    ari: AriRestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One hang-up, one DELETE (a second one races Asterisk's teardown and may get 503); and a call whose
    hang-up Asterisk refuses still ends on the bus, so the desk is not left with a live card."""
    deletes: list[str] = []
    refuse = False
    real_hangup = AriRestClient.hangup

    async def counted_hangup(self: AriRestClient, channel_id: str, reason: str = "normal") -> None:
        deletes.append(channel_id)
        if refuse:  # what Asterisk busy with the channel answers, after a round trip
            await asyncio.sleep(0.01)
            raise AriError("Service Unavailable", status=503, method="DELETE", path=f"/channels/{channel_id}")
        await real_hangup(self, channel_id, reason)

    monkeypatch.setattr(AriRestClient, "hangup", counted_hangup)

    async def handler(session: CallSession) -> None:
        await session.answer()
        await asyncio.gather(session.hangup(), session.hangup())  # said twice at once: still one request

    service = await start_gateway(handler)
    with service.bus.subscribed() as events:
        call = await phone.call(entry_uri(asterisk))
        await phone.wait_state(call, "DISCONNECTED", timeout=10)
        await wait_calls_ended(service, "completed")
        assert len(deletes) == 1
        assert [e.data["reason"] for e in _pending(events) if e.type == "call.ended"] == ["completed"]

        refuse = True
        call = await phone.call(entry_uri(asterisk))
        await wait_calls_ended(service, "error")
        assert len(deletes) == 3  # the script's, then the clean-up's
        assert [e.data["reason"] for e in _pending(events) if e.type == "call.ended"] == ["error"]
        await phone.hangup(call)
    await assert_nothing_left(ari, asterisk)


def _pending(events: Subscription) -> list[CallEvent]:
    return [events._queue.get_nowait() for _ in range(events.pending())]
