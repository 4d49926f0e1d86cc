"""Self-tests of the test softphone: two real pjsua2 processes calling each other directly (no Asterisk)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import audio
from tests.support.ports import free_port
from tools.softphone.driver import Softphone, SoftphoneDied, SoftphoneError, softphones

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


@pytest.fixture
def tone(tmp_path: Path) -> Path:
    return audio.make_tone_wav(tmp_path / "tone.wav", 1000, 3.0)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Softphone, Softphone]]:
    """(caller, callee); the callee answers automatically."""
    async with softphones(2) as (caller, callee):
        await callee.auto_answer()
        yield caller, callee


async def connect(caller: Softphone, callee: Softphone) -> tuple[str, str]:
    """Call the callee directly; returns (caller's call id, callee's call id) once both are up."""
    since = callee.mark()
    call = await caller.call(f"sip:x@127.0.0.1:{callee.sip_port}")
    await caller.wait_state(call, "CONFIRMED", timeout=5)
    incoming = await callee.wait_incoming(timeout=5, since=since)
    await callee.wait_state(incoming, "CONFIRMED", timeout=5)
    return call, incoming


async def test_tone_is_heard_and_recorded(pair: tuple[Softphone, Softphone], tone: Path, tmp_path: Path) -> None:
    caller, callee = pair
    call, incoming = await connect(caller, callee)
    await caller.wait_event("media_active", call=call, codec="PCMU")
    rec = tmp_path / "heard.wav"
    await caller.record(call, rec)
    await callee.play(incoming, tone, wait=True, timeout=10)
    ev = await caller.stop_record(call)
    assert ev["complete"] and ev["wav"] == str(rec)
    assert audio.active_speech_seconds(rec) >= 2.0
    # It is the tone (G.711 keeps it within a dB or so), not noise.
    assert audio.tone_level_dbfs(rec, 1000) == pytest.approx(audio.rms_dbfs(rec), abs=3.0)
    await caller.hangup(call)


async def test_dtmf_arrives_in_order(pair: tuple[Softphone, Softphone]) -> None:
    caller, callee = pair
    call, incoming = await connect(caller, callee)
    await caller.dtmf(call, "123#", gap_ms=100)
    got = await callee.wait_events("dtmf", 4, timeout=5, call=incoming)
    assert [e["digit"] for e in got] == ["1", "2", "3", "#"]
    assert all(b["t"] > a["t"] for a, b in itertools.pairwise(got))


@pytest.mark.parametrize("side", ["caller", "callee"])
async def test_hangup_by_either_side(pair: tuple[Softphone, Softphone], side: str) -> None:
    caller, callee = pair
    call, incoming = await connect(caller, callee)
    if side == "caller":
        await caller.hangup(call)
    else:
        await callee.hangup(incoming)
    await caller.wait_event("state", timeout=5, call=call, state="DISCONNECTED")
    await callee.wait_event("state", timeout=5, call=incoming, state="DISCONNECTED")
    with pytest.raises(SoftphoneError, match="has ended"):
        await caller.hangup(call)


async def test_four_concurrent_calls_in_one_process(
    pair: tuple[Softphone, Softphone], tone: Path, tmp_path: Path
) -> None:
    caller, callee = pair
    uri = f"sip:x@127.0.0.1:{callee.sip_port}"
    calls = [await caller.call(uri, record=str(tmp_path / f"c{i}.wav")) for i in range(4)]
    await asyncio.gather(*(caller.wait_state(c, "CONFIRMED", timeout=5) for c in calls))
    incoming = [e["call"] for e in await callee.wait_events("incoming", 4, timeout=5)]
    for c in incoming:
        await callee.wait_state(c, "CONFIRMED", timeout=5)
        await callee.play(c, tone, loop=True)
    with pytest.raises(SoftphoneError, match="at most 4 calls"):
        await caller.call(uri)
    await asyncio.sleep(1.5)
    for c in calls:
        await caller.hangup(c)
    recorded = [await caller.wait_recorded(c, timeout=5) for c in calls]
    for ev in recorded:
        assert ev["complete"]
        assert audio.active_speech_seconds(ev["wav"]) >= 1.0, ev
    await asyncio.gather(*(callee.wait_state(c, "DISCONNECTED", timeout=5) for c in incoming))
    # Slots are free again after the hang-ups.
    again = await caller.call(uri)
    await caller.wait_state(again, "CONFIRMED", timeout=5)


async def test_manual_answer_and_reject(pair: tuple[Softphone, Softphone]) -> None:
    caller, callee = pair
    await callee.auto_answer(enabled=False)
    uri = f"sip:x@127.0.0.1:{callee.sip_port}"
    call = await caller.call(uri)
    ringing = await caller.wait_state(call, "EARLY", timeout=5)
    assert ringing["code"] == 180
    incoming = await callee.wait_incoming(timeout=5)
    await callee.answer(incoming)
    await caller.wait_state(call, "CONFIRMED", timeout=5)
    await caller.hangup(call)

    await callee.auto_answer(code=486)
    busy = await caller.call(uri)
    with pytest.raises(SoftphoneError, match="486"):
        await caller.wait_state(busy, "CONFIRMED", timeout=5)


async def test_start_failure_is_reported(pair: tuple[Softphone, Softphone]) -> None:
    _, callee = pair
    with pytest.raises(SoftphoneDied, match="fatal") as info:
        await Softphone.start(sip_port=callee.sip_port)  # port taken
    assert "exited (code 1)" in str(info.value)


async def test_child_killed_mid_call_raises_instead_of_hanging(tmp_path: Path) -> None:
    caller = await Softphone.start()
    callee = await Softphone.start(log_path=tmp_path / "callee.log")
    try:
        await callee.auto_answer()
        call, _ = await connect(caller, callee)
        callee.kill()
        t0 = time.monotonic()
        with pytest.raises(SoftphoneDied) as info:
            await callee.wait_event("state", timeout=30, state="NEVER")
        assert time.monotonic() - t0 < 5
        assert f"pid {callee.pid} exited (code -9)" in str(info.value)
        assert "softphone stderr (tail)" in str(info.value)
        assert "pjsua" in str(info.value)  # the log file's tail is included
        with pytest.raises(SoftphoneDied):
            await callee.send("ping")
        # The survivor is still in charge of its own call.
        await caller.hangup(call)
    finally:
        assert await callee.close(check=False) == -9
        await caller.close()


async def test_quit_exits_zero_and_completes_recording(
    pair: tuple[Softphone, Softphone], tone: Path, tmp_path: Path
) -> None:
    caller, callee = pair
    call, incoming = await connect(caller, callee)
    rec = tmp_path / "until-quit.wav"
    await caller.record(call, rec)
    await callee.play(incoming, tone, loop=True)
    await asyncio.sleep(1.0)
    assert await caller.close() == 0  # quit with the call up: hang-up, recording finished, exit 0
    assert caller.find("recorded", call=call, complete=True)
    assert caller.find("bye")
    assert audio.active_speech_seconds(rec) >= 0.8
    await callee.wait_event("state", timeout=5, call=incoming, state="DISCONNECTED")


async def test_errors_are_reported() -> None:
    async with await Softphone.start() as phone:
        with pytest.raises(SoftphoneError, match="unknown command"):
            await phone.send("fly")
        with pytest.raises(SoftphoneError, match="no such call"):
            await phone.dtmf("nope", "1")
        with pytest.raises(SoftphoneError, match="missing field"):
            await phone.send("call", call="c9")
        assert (await phone.send("ping"))["calls"] == 0


REGISTRAR_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="registrar: digest challenge, 200 OK, then 200 OK to the unregister">
  <recv request="REGISTER" />
  <send><![CDATA[
SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: Digest realm="test", nonce="abc123"
Content-Length: 0

]]></send>
  <recv request="REGISTER">
    <action>
      <ereg regexp="Digest .*username=.op1." search_in="hdr" header="Authorization:" check_it="true"
            assign_to="auth" />
    </action>
  </recv>
  <Reference variables="auth" />
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg
[last_Call-ID:]
[last_CSeq:]
[last_Contact:];expires=300
Content-Length: 0

]]></send>
  <recv request="REGISTER" />
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) not installed")
async def test_register_with_digest_and_unregister_at_quit(tmp_path: Path) -> None:
    (tmp_path / "registrar.xml").write_text(REGISTRAR_SCENARIO)
    port = free_port(socket.SOCK_DGRAM)  # sipp needs a port number: a free one below the outgoing ports
    sipp = await asyncio.create_subprocess_exec(
        "sipp",
        "-sf",
        "registrar.xml",
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-m",
        "1",
        "-nostdin",
        "-trace_err",
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(0.3)
        async with await Softphone.start() as phone:
            ev = await phone.account("op1", "secret", f"sip:127.0.0.1:{port}")
            assert ev is not None and ev["code"] == 200 and ev["expiration"] == 300
        # The quit unregistered before exiting.
        assert phone.find("registered", account="op1", expiration=0, ok=True)
        assert await asyncio.wait_for(sipp.wait(), 5) == 0  # sipp saw the whole scenario
    finally:
        if sipp.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                sipp.kill()
            await sipp.wait()
