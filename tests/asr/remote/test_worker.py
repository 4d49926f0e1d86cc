"""The ASR worker as a process: its token, its answers to bad frames, capacity, metrics and drain on SIGTERM
(real `hotline asr serve` processes, the packaged Whisper model, real Mandarin speech)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.connection import Connection
from websockets.exceptions import InvalidStatus

from asr.audio import float_to_pcm16
from asr.remote.pool import RemoteEngine
from asr.remote.protocol import STREAM_PATH, pack_audio
from asr.telephone import telephone_path
from tests.asr.remote.support import ROOT, TOKEN, WorkerProcess, pool_settings
from tests.asr.support import with_silence
from tests.support.ports import free_port
from tools.asr_eval.cer import corpus_cer
from tools.asr_eval.corpus import load_set
from voice.asterisk.tls import self_signed

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerProcess]:
    process = WorkerProcess("w-errors", max_streams=3).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def speech(speech_root: Path) -> tuple[bytes, str]:
    """Two sentences of real speech as a telephone delivers them, 16 kHz PCM, and what was said."""
    clips = load_set("thchs30-d4", speech_root)[1:3]
    return float_to_pcm16(with_silence([telephone_path(c.audio()) for c in clips])), "".join(c.reference for c in clips)


async def receive(ws: Connection, timeout_s: float = 30.0, skip_load: bool = True) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while True:
        message: dict[str, object] = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if not (skip_load and message["type"] == "load"):
            return message


async def session(url: str) -> ClientConnection:
    ws = await connect(url + STREAM_PATH, additional_headers=AUTH, compression=None, proxy=None)
    hello = await receive(ws)
    assert hello["type"] == "hello" and hello["protocol"] == 1
    return ws


async def stream_through(ws: Connection, channel: int, pcm: bytes) -> list[dict[str, object]]:
    """Open `channel`, send the audio at 4x real time in 20 ms frames, finish; every segment until `finished`."""
    await ws.send(json.dumps({"type": "open", "channel": channel, "stream_id": f"t:{channel}", "speaker": "caller"}))
    assert await receive(ws) == {"type": "opened", "channel": channel}
    for at in range(0, len(pcm), 640):
        await ws.send(pack_audio(channel, pcm[at : at + 640]))
        if at % 6400 == 0:
            await asyncio.sleep(0.05)
    await ws.send(json.dumps({"type": "finish", "channel": channel}))
    segments: list[dict[str, object]] = []
    while True:
        message = await receive(ws, 120)
        if message["type"] == "finished":
            return segments
        assert message.get("channel") == channel, message
        segments.append(message)


def test_health_is_open_and_the_rest_needs_the_token(worker: WorkerProcess) -> None:
    http = f"http://127.0.0.1:{worker.port}"
    health = httpx.get(f"{http}/health")
    assert health.status_code == 200
    assert health.json() | {"streams": 0} == health.json() and health.json()["status"] == "ok"
    assert health.json()["capacity"] == 3
    assert httpx.get(f"{http}/metrics").status_code == 401
    assert httpx.get(f"{http}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    metrics = httpx.get(f"{http}/metrics", headers=AUTH)
    assert metrics.status_code == 200 and "hotline_asr_worker_real_time_factor" in metrics.text
    assert "hotline_asr_worker_silent_finals 0.0" in metrics.text  # nothing decoded yet, so nothing lost
    assert "hotline_asr_worker_uncovered_rereads 0.0" in metrics.text

    async def without_token() -> int:
        try:
            await connect(worker.url + STREAM_PATH, proxy=None)
        except InvalidStatus as exc:
            return exc.response.status_code
        return 0

    assert asyncio.run(without_token()) == 401


def test_bad_frames_get_a_clear_error_and_the_worker_goes_on(worker: WorkerProcess, speech: tuple[bytes, str]) -> None:
    pcm, said = speech

    async def go() -> list[dict[str, object]]:
        async with await session(worker.url) as ws:
            errors = []
            for frame in ("{nope", json.dumps({"type": "open", "channel": -1}), pack_audio(42, b"\0\0"), b"\x01"):
                await ws.send(frame)
                errors.append(await receive(ws))
            await ws.send(json.dumps({"type": "finish", "channel": 42}))
            errors.append(await receive(ws))
            segments = await stream_through(ws, 1, pcm)  # the same connection still transcribes
            return errors + segments

    messages = asyncio.run(go())
    errors, segments = messages[:5], messages[5:]
    assert [e["type"] for e in errors] == ["error"] * 5
    assert [e["code"] for e in errors] == ["bad_json", "bad_message", "unknown_channel", "bad_audio", "unknown_channel"]
    assert "42" in str(errors[2]["message"]) and errors[2]["channel"] == 42
    finals = [s for s in segments if s["kind"] == "final"]
    assert len(finals) >= 2
    assert [s["index"] for s in finals] == sorted({int(str(s["index"])) for s in finals})
    heard = "".join(str(s["text"]) for s in finals)
    assert corpus_cer([(said, heard)]).cer < 0.45, heard
    assert httpx.get(f"http://127.0.0.1:{worker.port}/health").json()["status"] == "ok"
    metrics = httpx.get(f"http://127.0.0.1:{worker.port}/metrics", headers=AUTH).text
    assert 'hotline_asr_worker_protocol_errors_total{code="unknown_channel"} 2.0' in metrics


def test_a_channel_far_ahead_of_real_time_is_told_and_its_audio_dropped(worker: WorkerProcess) -> None:
    """A client may replay what it kept (up to 120 s at once), never flood: beyond 150 s ahead, frames are
    refused with `too_fast` and the channel goes on."""

    async def go() -> list[dict[str, object]]:
        async with await session(worker.url) as ws:
            await ws.send(json.dumps({"type": "open", "channel": 9, "stream_id": "flood", "speaker": "caller"}))
            assert (await receive(ws))["type"] == "opened"
            second = bytes(2 * 16000)
            for _ in range(160):  # 160 s of (silent) audio at once
                await ws.send(pack_audio(9, second))
            answers = []
            with contextlib.suppress(TimeoutError):
                while True:
                    answers.append(await receive(ws, timeout_s=2))
            await ws.send(json.dumps({"type": "finish", "channel": 9}))
            while (message := await receive(ws, 60))["type"] != "finished":
                answers.append(message)
            return answers

    answers = asyncio.run(go())
    errors = [a for a in answers if a["type"] == "error"]
    assert errors and {e["code"] for e in errors} == {"too_fast"}
    assert 9 <= len(errors) <= 11  # the last ~10 s of 160
    assert "ahead of real time" in str(errors[0]["message"]) and errors[0]["channel"] == 9


def test_a_full_worker_refuses_with_a_reason(worker: WorkerProcess) -> None:
    async def go() -> list[dict[str, object]]:
        async with await session(worker.url) as ws:
            answers = []
            for channel in range(1, 5):
                await ws.send(
                    json.dumps({"type": "open", "channel": channel, "stream_id": f"f{channel}", "speaker": "caller"})
                )
                answers.append(await receive(ws))
            await ws.send(json.dumps({"type": "open", "channel": 1, "stream_id": "again", "speaker": "caller"}))
            answers.append(await receive(ws))
            return answers

    answers = asyncio.run(go())
    assert [a["type"] for a in answers[:3]] == ["opened"] * 3
    assert answers[3] == {"type": "refused", "channel": 4, "reason": "full"}
    assert answers[4] == {"type": "refused", "channel": 1, "reason": "channel_in_use"}
    # the connection is gone, and its streams with it
    deadline = time.monotonic() + 5
    while httpx.get(f"http://127.0.0.1:{worker.port}/health").json()["streams"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.get(f"http://127.0.0.1:{worker.port}/health").json()["streams"] == 0


def test_sigterm_drains_open_streams_then_exits(speech: tuple[bytes, str]) -> None:
    pcm, _ = speech
    process = WorkerProcess("w-drain", env={"HOTLINE_ASR__SERVICE__DRAIN_TIMEOUT_S": "60"}).start()
    http = f"http://127.0.0.1:{process.port}"
    try:

        async def go() -> tuple[list[dict[str, object]], dict[str, object], int]:
            async with await session(process.url) as ws, await session(process.url) as other:
                await ws.send(json.dumps({"type": "open", "channel": 1, "stream_id": "d1", "speaker": "caller"}))
                assert (await receive(ws))["type"] == "opened"
                process.signal(signal.SIGTERM)
                load = await receive(ws, skip_load=False)
                while not load.get("draining"):
                    load = await receive(ws, skip_load=False)
                await other.send(json.dumps({"type": "open", "channel": 7, "stream_id": "d7", "speaker": "caller"}))
                refused = await receive(other)
                async with httpx.AsyncClient() as client:
                    health = (await client.get(f"{http}/health")).status_code
                for at in range(0, len(pcm), 6400):
                    await ws.send(pack_audio(1, pcm[at : at + 6400]))
                await ws.send(json.dumps({"type": "finish", "channel": 1}))
                segments = []
                while (message := await receive(ws, 120))["type"] != "finished":
                    segments.append(message)
                return segments, refused, health

        segments, refused, health = asyncio.run(go())
        assert refused == {"type": "refused", "channel": 7, "reason": "draining"}
        assert health == 503
        assert sum(s["kind"] == "final" for s in segments) >= 2  # the stream open at SIGTERM was served to its end
        assert process.wait(15) == 0  # and then the worker left on its own
    finally:
        process.stop()


def test_a_worker_with_tls_serves_only_clients_that_trust_its_certificate(
    tmp_path: Path, speech: tuple[bytes, str]
) -> None:
    """Callers' voices between machines: the worker serves wss:// with its certificate; a gateway that trusts it
    transcribes, one that does not (or speaks plain ws://) never connects, and says why."""
    pcm, said = speech
    cert, key = self_signed(tmp_path / "tls", "127.0.0.1")
    tls = {"HOTLINE_ASR__SERVICE__TLS_CERT_FILE": str(cert), "HOTLINE_ASR__SERVICE__TLS_KEY_FILE": str(key)}
    process = WorkerProcess("w-tls", env=tls).start()
    try:
        assert any(line.startswith("listening on wss://") for line in process.output)
        secure = f"wss://127.0.0.1:{process.port}"

        async def go() -> tuple[str, list[str]]:
            trusted = RemoteEngine(pool_settings([secure], tls_ca_file=str(cert)))
            await trusted.start()
            stream = trusted.open_stream("tls:1", "caller")
            collected = asyncio.create_task(stream.transcribe_all())
            for at in range(0, len(pcm), 3200):
                stream.push(pcm[at : at + 3200])
                await asyncio.sleep(0.02)
            await stream.finish()
            heard = "".join(s.text for s in await collected if s.kind == "final")
            await trusted.aclose()
            refused = []
            for url, ca in ((secure, None), (f"ws://127.0.0.1:{process.port}", None)):
                other = RemoteEngine(pool_settings([url], tls_ca_file=ca))
                await other.start(wait_s=1.5)
                assert not other.links[0].usable
                refused.append(other.links[0].last_error)
                await other.aclose()
            return heard, refused

        heard, refused = asyncio.run(go())
    finally:
        process.stop()
    assert corpus_cer([(said, heard)]).cer < 0.45, heard
    assert "CERTIFICATE_VERIFY_FAILED" in refused[0], refused
    assert refused[1], refused  # plain WebSocket to a TLS port: no handshake


def test_asr_status_shows_each_listed_worker_for_the_person_on_call(worker: WorkerProcess) -> None:
    closed = free_port()
    listed = f'["{worker.url}", "ws://127.0.0.1:{closed}"]'

    def status(workers: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOTLINE_ASR__SERVICE__WORKERS": workers, "HOTLINE_ASR__SERVICE__TOKEN": TOKEN}
        command = [sys.executable, "-m", "hotline.cli", "asr", "status", "--timeout", "1"]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    both = status(listed)
    assert both.returncode == 0, both.stderr
    lines = both.stdout.splitlines()
    assert lines[0].startswith(worker.url) and " ok " in lines[0] and "/3 streams" in lines[0]
    assert lines[1].startswith(f"ws://127.0.0.1:{closed}") and " down " in lines[1]
    none = status(f'["ws://127.0.0.1:{closed}"]')
    assert none.returncode == 1 and "down" in none.stdout
