"""A recognition server the hotline already runs, as the engine: the Wyoming protocol (`asr.engine: wyoming`).

Wyoming is the open protocol of Home Assistant's and Rhasspy's speech servers (wyoming-faster-whisper on PyPI,
wyoming-vosk, ...): JSON lines with binary payloads over TCP or a unix socket. A request is one utterance: the
client sends `transcribe` (language), `audio-start`, `audio-chunk`s and `audio-stop`, and the server answers one
`transcript` and closes. So the endpointing stays here: each stream runs the project's Silero VAD on its ingest
lane, and every utterance that closes is sent as one request (16 kHz s16le, with the VAD's speech pad). While
speech goes on, the open utterance is sent every `partial_interval_ms` for a partial, if the stream has none in
flight and a request slot is free beyond the one kept for finals.

A stream sends its finals one at a time, in order, on the event loop. A request that fails (server unreachable,
an `error` event, no transcript within `timeout_s`) makes that utterance a `gap`; the first failure also emits a
`status` "unavailable" with the reason, and the next success a "resumed". The call is never touched. The
protocol carries no confidence: finals have 0.0. Text is converted to simplified characters as the embedded
engine's is.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import zhconv  # type: ignore[import-untyped]
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.info import Describe, Info

from asr.audio import ASR_RATE, FloatArray, StreamResampler, float_to_pcm16, pcm16_to_float
from asr.engine import AsrEngine, AsrStream, StreamState
from asr.settings import AsrSettings, WyomingSettings
from asr.streaming import LaneStream, PartialSchedule, StreamRegistry
from asr.vad import Endpointer, SileroVad, Utterance, last_utterances
from asr.whisper_decoder import collapse_repetitions
from asr.workers import Lanes

log = logging.getLogger(__name__)

_CHUNK_BYTES = ASR_RATE * 2 // 5  # 200 ms of 16 kHz s16le per audio-chunk event
T = TypeVar("T")


class WyomingError(Exception):
    """One request failed; the message names the server and what went wrong (shown to the operator)."""


def _ms(samples: int) -> int:
    return samples * 1000 // ASR_RATE


def clean_text(text: str) -> str:
    """Simplified characters, a looping tail collapsed, no surrounding space."""
    return collapse_repetitions(zhconv.convert(text, "zh-hans")).strip()


class WyomingEngine(AsrEngine):
    name = "wyoming"

    def __init__(self, settings: AsrSettings) -> None:
        self.settings = settings
        self.config = settings.wyoming
        self.vad = SileroVad()
        self.lanes = Lanes(1, name="asr-wyoming-ingest")
        self._slots = asyncio.Semaphore(self.config.max_requests)
        self.in_flight = 0  # written on the loop, read by ingest lanes (an int: no lock needed)
        self.requests = 0
        self.failures = 0  # utterances a final was asked for and not given (each one a gap on the desk)
        self._registry = StreamRegistry()

    @property
    def active_streams(self) -> int:
        return len(self._registry)

    async def start(self) -> None:
        """Say once at start whether the server answers (calls go on either way; each utterance tries again)."""
        try:
            info = await self.describe()
        except WyomingError as exc:
            log.warning("wyoming server not answering at start: %s", exc)
            return
        log.info("wyoming server %s: %s", self.config.uri, ", ".join(asr_models(info)) or "no ASR model listed")

    async def describe(self) -> Info:
        return await describe_server(self.config)

    def has_room(self) -> bool:
        """Whether a partial may be sent now: one slot stays for the next final."""
        return self.in_flight < self.config.max_requests - 1

    async def transcribe(self, audio: FloatArray, *, partial: bool = False) -> str:
        """One utterance (16 kHz float) to text: one request, bounded by `timeout_s`. `partial`: the open utterance
        so far, for a preview (its failure is not counted in `failures`)."""
        pcm = float_to_pcm16(audio)
        language = self.settings.language

        async def exchange(client: AsyncClient) -> str:
            await client.write_event(Transcribe(language=language).event())
            await client.write_event(AudioStart(rate=ASR_RATE, width=2, channels=1).event())
            for at in range(0, len(pcm), _CHUNK_BYTES):
                chunk = AudioChunk(rate=ASR_RATE, width=2, channels=1, audio=pcm[at : at + _CHUNK_BYTES])
                await client.write_event(chunk.event())
            await client.write_event(AudioStop().event())
            while True:
                event = await _read(client, self.config.uri)
                if Transcript.is_type(event.type):
                    return clean_text(Transcript.from_event(event).text)

        async with self._slots:
            self.in_flight += 1
            self.requests += 1
            try:
                return await _exchange(self.config, exchange)
            except WyomingError:
                if not partial:  # a failed partial is only a preview skipped (logged by its stream)
                    self.failures += 1
                raise
            finally:
                self.in_flight -= 1

    def open_stream(
        self, stream_id: str, speaker: str, phrases: Sequence[str] = (), *, sample_rate: int = ASR_RATE
    ) -> WyomingStream:
        """`phrases` are not sent: the protocol's `transcribe` has no prompt or hotwords."""
        self._registry.ensure_open()
        return self._registry.add(WyomingStream(self, stream_id, speaker, sample_rate))

    def _forget(self, stream: AsrStream) -> None:
        self._registry.discard(stream)

    def close(self) -> None:
        if self._registry.close_all():
            self.lanes.close()


async def describe_server(config: WyomingSettings) -> Info:
    """The server's `info` (its programs and models); WyomingError when it does not answer."""

    async def exchange(client: AsyncClient) -> Info:
        await client.write_event(Describe().event())
        while True:
            event = await _read(client, config.uri)
            if Info.is_type(event.type):
                return Info.from_event(event)

    return await _exchange(config, exchange)


async def _exchange(config: WyomingSettings, exchange: Callable[[AsyncClient], Awaitable[T]]) -> T:
    """One connection for one request, all of it bounded by `timeout_s`; failures become WyomingError."""
    uri, timeout = config.uri, config.timeout_s
    client = AsyncClient.from_uri(uri)
    try:
        async with asyncio.timeout(timeout):
            await client.connect()
            try:
                return await exchange(client)
            finally:
                with contextlib.suppress(OSError):
                    await client.disconnect()
    except TimeoutError:
        raise WyomingError(f"wyoming server {uri} did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise WyomingError(f"wyoming server {uri} unreachable: {exc.strerror or exc}") from None


async def _read(client: AsyncClient, uri: str) -> Any:
    event = await client.read_event()
    if event is None:
        raise WyomingError(f"wyoming server {uri} closed the connection without an answer")
    if Error.is_type(event.type):
        raise WyomingError(f"wyoming server {uri}: {Error.from_event(event).text}")
    return event


def asr_models(info: Info) -> list[str]:
    """The ASR models a server's `info` lists, as `program/model`."""
    return [f"{program.name}/{model.name}" for program in info.asr for model in program.models]


class WyomingStream(LaneStream):
    def __init__(self, engine: WyomingEngine, stream_id: str, speaker: str, sample_rate: int) -> None:
        super().__init__(engine, stream_id, speaker, sample_rate)
        self._engine = engine
        self._endpointer = Endpointer(engine.vad.new_state(), engine.settings.vad.config())
        self._resampler = StreamResampler(sample_rate, ASR_RATE) if sample_rate != ASR_RATE else None
        self._partials = PartialSchedule(engine.settings.partial_interval_ms * ASR_RATE // 1000)
        self._send_partials = engine.config.partials
        # event loop:
        self._finals: asyncio.Queue[tuple[int, Utterance]] = asyncio.Queue()
        self._sender = self._loop.create_task(self._send_finals())
        self._partial_tasks: set[asyncio.Task[None]] = set()
        self._unavailable = False

    # --- lane thread ---
    def _ingest(self, pcm: bytes) -> None:
        if self._seq.closed:
            return
        audio = pcm16_to_float(pcm)
        if self._resampler is not None:
            audio = self._resampler.push(audio)
        for utterance in self._endpointer.feed(audio):
            self._submit_final(utterance)
        if self._send_partials:
            self._maybe_partial()

    def _flush(self) -> None:
        try:
            if not self._seq.closed:
                for utterance in last_utterances(self._endpointer, self._resampler):
                    self._submit_final(utterance)
        finally:
            self._seq.flushed()

    def _submit_final(self, utterance: Utterance) -> None:
        index = self._seq.close_utterance()
        with contextlib.suppress(RuntimeError):  # loop closed: nobody is listening any more
            self._loop.call_soon_threadsafe(self._finals.put_nowait, (index, utterance))

    def _maybe_partial(self) -> None:
        index = self._seq.open_index
        taken = self._partials.next_partial(self._endpointer, index, self._engine.has_room)
        if taken is None:
            return
        snap, start, audio = taken
        job = functools.partial(self._start_partial, index, snap, start, self._endpointer.position, audio)
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(job)

    # --- event loop ---
    def _start_partial(self, index: int, snap: int, start: int, end: int, audio: FloatArray) -> None:
        task = self._loop.create_task(self._partial(index, snap, start, end, audio))
        self._partial_tasks.add(task)
        task.add_done_callback(self._partial_tasks.discard)

    async def _partial(self, index: int, snap: int, start: int, end: int, audio: FloatArray) -> None:
        try:
            if not self._seq.is_open(index):
                return
            text = await self._engine.transcribe(audio, partial=True)
            if text:
                self._seq.partial(index, snap, self._seq.make("partial", index, text, _ms(start), _ms(end), 0.0))
        except Exception as exc:  # a partial is only a preview: its final follows anyway
            log.debug("asr stream %s: partial skipped: %r", self.stream_id, exc)
        finally:
            self._partials.done()

    async def _send_finals(self) -> None:
        while True:
            index, utterance = await self._finals.get()
            await self._final(index, utterance)

    async def _final(self, index: int, utterance: Utterance) -> None:
        start, end = _ms(utterance.start), _ms(utterance.end)
        if self._seq.closed:
            self._seq.deliver(index, None)
            return
        try:
            text = await self._engine.transcribe(utterance.audio)
        except WyomingError as exc:
            log.warning("asr stream %s: utterance %d-%d ms not transcribed: %s", self.stream_id, start, end, exc)
            self._say(index, end, "unavailable", str(exc))
            self._seq.deliver(index, self._seq.make("gap", index, "", start, end, 0.0, error=str(exc)))
            return
        except Exception as exc:  # e.g. an answer this client cannot read: this utterance only, the stream goes on
            log.exception("asr stream %s: utterance %d-%d ms failed", self.stream_id, start, end)
            self._seq.deliver(index, self._seq.make("gap", index, "", start, end, 0.0, error=repr(exc)))
            return
        self._say(index, start, "resumed", None)
        self._seq.deliver(index, self._seq.make("final", index, text, start, end, 0.0) if text else None)

    def _say(self, index: int, at: int, state: StreamState, why: str | None) -> None:
        """A status segment when the server's availability changes (finals run one at a time, so every earlier
        final is out and this lands in order)."""
        unavailable = state == "unavailable"
        if unavailable == self._unavailable or self._seq.closed:
            return
        self._unavailable = unavailable
        self._sink.put(self._seq.make("status", index, "", at, at, 0.0, error=why, status=state))

    async def finish(self) -> None:
        try:
            await super().finish()
        finally:
            self._stop_tasks()

    def close(self) -> None:
        super().close()
        self._stop_tasks()

    def _stop_tasks(self) -> None:
        self._sender.cancel()
        for task in list(self._partial_tasks):
            task.cancel()
