"""Each conversation recorded through ARI: a real call, the caller and the operator each play a tone of their own,
and the stored recording holds both, in a private file, announced on the bus once the call has ended."""

from __future__ import annotations

import asyncio
import io
import os
import stat
import time
import wave
from pathlib import Path

import pytest

from events.bus import EventBus
from events.contract import CallFields, CallRecorded
from ivr_flows.port import RouteOutcome, RouteRequest
from tests.support.audio import make_tone_wav, rms_dbfs, tone_level_dbfs, wav_duration
from tests.voice.conftest import GatewayStarter, entry_uri, registered
from tests.voice.test_calls import assert_nothing_left
from tests.voice.test_routing import routing_handler
from tools.softphone.driver import Softphone
from voice.ari import AriRestClient
from voice.asterisk.instance import AsteriskInstance
from voice.recording import CallRecorder, file_stem

pytestmark = pytest.mark.slow

TONES = {"caller": 440.0, "operator": 1000.0}


async def test_the_conversation_is_recorded_with_both_parties_in_a_private_file(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path, ari: AriRestClient
) -> None:
    wavs = {who: make_tone_wav(tmp_path / f"{who}.wav", freq, 30.0, rate=8000) for who, freq in TONES.items()}
    outcomes: list[RouteOutcome] = []
    request = RouteRequest(queue="zh", skills=("zh",), language="zh", ring_timeout_s=5)
    service = await start_gateway(routing_handler(request, outcomes))
    folder = service.settings.resolve(service.settings.recording.dir)
    with service.bus.subscribed() as events:
        async with registered(asterisk, tmp_path, "op1002") as (operator,):
            call = await phone.call(entry_uri(asterisk))
            await phone.play(call, wavs["caller"], loop=True)
            op_call = await operator.wait_incoming(timeout=10)
            await operator.wait_state(op_call, "CONFIRMED", timeout=5)
            await operator.play(op_call, wavs["operator"], loop=True)
            await asyncio.sleep(3.0)
            await operator.hangup(op_call)
            await phone.wait_state(call, "DISCONNECTED", timeout=5)
        async with asyncio.timeout(10):
            recorded = None
            while recorded is None:
                event = await events.get()
                if isinstance(event.body, CallRecorded):
                    recorded = event.body
    path = folder / recorded.recording
    assert path.is_file() and recorded.bytes == path.stat().st_size
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert 2.5 < wav_duration(path) < 6.0 and abs(recorded.seconds - wav_duration(path)) < 0.1
    total = rms_dbfs(path)
    for who, freq in TONES.items():  # each party is in it, and each tone is a real part of what was recorded
        assert tone_level_dbfs(path, freq) > total - 12, (who, tone_level_dbfs(path, freq), total)
    stored = {item["name"] for item in await ari.request("GET", "/recordings/stored")}
    assert f"hotline-{file_stem(recorded.call_id)}" not in stored  # fetched, and removed from Asterisk
    await assert_nothing_left(ari, asterisk)


async def test_recordings_past_the_retention_are_deleted(tmp_path: Path) -> None:
    rest = AriRestClient("http://127.0.0.1:9/ari", "x", "y")  # never called: pruning is files only
    recorder = CallRecorder(rest, tmp_path / "recordings", EventBus())
    old = tmp_path / "recordings" / "2026-01-01" / "a.wav"
    new = tmp_path / "recordings" / "2026-12-04" / "b.wav"
    for path in (old, new):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"RIFF")
    now = time.time()
    os.utime(old, (now - 200 * 86400, now - 200 * 86400))
    assert recorder.prune(now - 180 * 86400) == 1
    assert not old.exists() and not old.parent.exists() and new.exists()
    await rest.close()


class _StillWriting(AriRestClient):
    """Asterisk's answers while it finishes a file: listed but empty, then a header without sizes, then whole."""

    def __init__(self, whole: bytes) -> None:
        super().__init__("http://127.0.0.1:9/ari", "x", "y")
        opened = io.BytesIO()  # what Asterisk has written when it opens the file: a header with no sizes yet
        with wave.open(opened, "wb") as header:
            header.setnchannels(1)
            header.setsampwidth(2)
            header.setframerate(8000)
        self.answers = [b"", opened.getvalue() + whole[44:2000], whole]
        self.fetches = 0
        self.deleted: list[str] = []

    async def stored_recording_file(self, name: str) -> bytes:
        self.fetches += 1
        return self.answers[min(self.fetches, len(self.answers)) - 1]

    async def delete_stored_recording(self, name: str) -> None:
        self.deleted.append(name)


async def test_a_recording_still_being_finished_is_fetched_again_until_it_is_whole(tmp_path: Path) -> None:
    tone = make_tone_wav(tmp_path / "tone.wav", 440.0, 1.0)
    rest = _StillWriting(tone.read_bytes())
    bus = EventBus()
    recorder = CallRecorder(rest, tmp_path / "recordings", bus)
    with bus.subscribed() as events:
        recorder.finish(CallFields(call_id="c1", caller_number="13800138000", language="zh"), "hotline-c1")
        await recorder.stop()
        recorded = [e for e in [await asyncio.wait_for(events.get(), 5)] if e.type == "call.recorded"]
    assert rest.fetches == 3 and rest.deleted == ["hotline-c1"]
    assert recorded and recorded[0].data["seconds"] >= 0.9
    await rest.close()
