"""The Wyoming engine's error paths against a misbehaving server (a fake one is fine for a client's errors; the real
server's behaviour is in test_wyoming_engine.py): an `error` event or a dropped connection makes the utterance a gap
that names the server and the reason, and the stream goes on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pydantic import ValidationError
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event

from asr.settings import AsrSettings, WyomingSettings
from asr.telephone import telephone_path
from asr.wyoming_engine import WyomingEngine
from tests.asr.support import pcm_of, run_stream, with_silence
from tools.asr_eval.corpus import load_set


@asynccontextmanager
async def misbehaving_server(answer: str) -> AsyncIterator[str]:
    """Reads a request up to audio-stop, then answers with an `error` event or just closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (event := await async_read_event(reader)) is not None and event.type != "audio-stop":
            pass
        if answer == "error":
            await async_write_event(Error(text="model not loaded", code="no-model").event(), writer)
        elif answer == "garbled":  # a transcript without its text
            await async_write_event(Event(type="transcript", data={"txet": "?"}), writer)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        server.close()


@pytest.mark.parametrize(
    ("answer", "reason"),
    [("error", "model not loaded"), ("close", "closed the connection without an answer")],
)
async def test_a_failed_request_is_a_gap_naming_the_server_and_why(speech_root: Path, answer: str, reason: str) -> None:
    clip = load_set("thchs30-d4", speech_root)[0]
    audio = pcm_of(with_silence([telephone_path(clip.audio())]))
    async with misbehaving_server(answer) as uri:
        engine = WyomingEngine(AsrSettings.model_validate({"engine": "wyoming", "wyoming": {"uri": uri}}))
        try:
            run = await run_stream(engine.open_stream("call/caller", "caller"), audio, speed=50.0)
        finally:
            engine.close()
    assert run.segments[0].kind == "status" and run.segments[0].status == "unavailable"
    assert run.gaps() and not run.finals() and not run.partials()
    for gap in run.gaps():
        assert gap.error is not None and uri in gap.error and reason in gap.error
    assert engine.failures >= len(run.gaps())


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1:10300", "tcp://127.0.0.1", "tcp://user@127.0.0.1:10300", "10300", "tcp://h:1/x"]
)
def test_a_server_address_must_be_tcp_host_port_or_a_unix_socket(uri: str) -> None:
    with pytest.raises(ValidationError, match=r"a Wyoming server is tcp://|needs both"):
        WyomingSettings(uri=uri)


def test_unix_sockets_and_per_party_servers_are_accepted() -> None:
    settings = AsrSettings.model_validate(
        {
            "engine": "wyoming",
            "wyoming": {"uri": "unix:///run/wyoming/asr.sock"},
            "by_speaker": {"operator": {"wyoming_uri": "tcp://10.0.0.5:10300"}},
        }
    )
    assert settings.for_speaker("caller").wyoming.uri == "unix:///run/wyoming/asr.sock"
    assert settings.for_speaker("operator").wyoming.uri == "tcp://10.0.0.5:10300"
    with pytest.raises(ValidationError, match=r"by_speaker\.operator"):
        AsrSettings.model_validate({"by_speaker": {"operator": {"wyoming_uri": "udp://x:1"}}})


async def test_an_answer_the_client_cannot_read_costs_that_utterance_only(speech_root: Path) -> None:
    clip = load_set("thchs30-d4", speech_root)[0]
    audio = pcm_of(with_silence([telephone_path(clip.audio())]))
    async with misbehaving_server("garbled") as uri:
        engine = WyomingEngine(AsrSettings.model_validate({"engine": "wyoming", "wyoming": {"uri": uri}}))
        try:
            run = await run_stream(engine.open_stream("call/caller", "caller"), audio, speed=50.0)
        finally:
            engine.close()
    assert run.gaps() and not run.finals(), run.segments  # the stream still ended: finish() did not hang
    assert all(gap.error and "KeyError" in gap.error for gap in run.gaps()), run.gaps()
