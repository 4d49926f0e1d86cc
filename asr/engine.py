"""The recogniser interface: an engine opens streams; a stream takes PCM and yields partial/final segments.

Contract (what `voice/` and the event bus may rely on):
- `push(pcm)` takes 16-bit little-endian mono PCM at the stream's sample rate (16 kHz by default; 8 kHz and
  other rates are resampled). It only queues bytes: it never blocks the event loop, whatever the engine does.
- `segments()` yields, in order: `partial` segments (replaceable: a later partial or the final with the same
  `segment_id` supersedes them), `final` segments (immutable, never repeated), and `gap` segments (no text:
  the audio between `start_ms` and `end_ms` was lost because decoding failed; the stream was restarted and
  goes on).
- A final may have empty text: the partials shown for that segment were noise and are withdrawn.
- An `alternative` segment (only from an engine given decode hints, `asr.hints`) may follow a final with the same
  `segment_id`: a second reading of that utterance, decoded with the phrases the first reading suggested. It never
  replaces the final (the transcript shows what was heard); it is evidence for whoever reads meaning (places).
- A `status` segment (only from an engine whose recogniser is elsewhere: `asr.remote`, `asr.wyoming_engine`) says
  transcription stopped (`status` "unavailable" or "queued", `error` the reason) or goes on again ("resumed"); it
  has no text and no segment of its own to replace. Audio lost meanwhile follows as a `gap`.
- `await finish()` flushes the utterance in progress as a final, waits for every outstanding final, then ends
  `segments()`. `close()` drops everything at once (hang-up without flush) and ends `segments()`.
- Times are milliseconds of audio since the stream opened. Segment ids are `<stream_id>:<n>`, n counting up.
- Heavy work runs in the engine's worker threads; one engine (one model, one pool) serves every stream.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from asr.hints import DecodeHints
from asr.settings import AsrSettings

SegmentKind = Literal["partial", "final", "gap", "alternative", "status"]
StreamState = Literal["unavailable", "queued", "resumed"]


@dataclass(frozen=True, slots=True)
class Segment:
    kind: SegmentKind
    segment_id: str
    stream_id: str
    speaker: str
    text: str
    start_ms: int
    end_ms: int
    confidence: float
    error: str | None = None  # for gaps: what failed; for a status: why
    status: StreamState | None = None  # for a status segment
    suggested: bool = False  # an alternative that is the final with one span put right, scored against the audio

    @property
    def is_final(self) -> bool:
        return self.kind == "final"


class AsrStream(abc.ABC):
    """One direction of one call."""

    stream_id: str
    speaker: str
    sample_rate: int

    @abc.abstractmethod
    def push(self, pcm: bytes) -> None:
        """Queue s16le mono PCM (any length; 20 ms frames are typical). Ignored after finish() or close()."""

    @abc.abstractmethod
    def segments(self) -> AsyncIterator[Segment]:
        """Partial, final and gap segments in order; ends after finish() or close(). Iterate once."""

    @abc.abstractmethod
    async def finish(self) -> None:
        """Flush: the utterance in progress becomes a final; returns when every final has been yielded."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop now without flushing; pending work is dropped. Idempotent."""

    async def transcribe_all(self) -> list[Segment]:
        """Collect every segment until the stream ends (for tools and tests)."""
        return [segment async for segment in self.segments()]


class AsrEngine(abc.ABC):
    name: str

    @abc.abstractmethod
    def open_stream(
        self, stream_id: str, speaker: str, phrases: Sequence[str] = (), *, sample_rate: int = 16000
    ) -> AsrStream:
        """A new stream. Call from the event loop that will iterate its segments.

        `phrases` biases recognition towards those words (e.g. Beijing place names); engines say how.
        """

    async def start(self) -> None:
        """Called once on the event loop before the first stream (an engine that connects somewhere does it here)."""
        return None

    @abc.abstractmethod
    def close(self) -> None:
        """Close every stream and stop the engine's threads."""

    @property
    @abc.abstractmethod
    def active_streams(self) -> int:
        """Streams opened and not yet finished or closed."""


def running_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError as exc:
        raise RuntimeError("open_stream() must be called from the event loop that reads the segments") from exc


def resolve_path(path: Path, base_dir: Path | None) -> Path:
    """Settings paths are relative to the project root (base_dir) unless absolute."""
    if path.is_absolute() or base_dir is None:
        return path
    return base_dir / path


def create_engine(settings: AsrSettings, base_dir: Path | None = None, hints: DecodeHints | None = None) -> AsrEngine:
    """The gateway's recogniser: ASR workers when `asr.service.workers` lists some (their `start()` connects),
    else the engine named in settings, in this process (see create_local_engine)."""
    if settings.service.workers:
        from asr.remote.pool import RemoteEngine

        return RemoteEngine(settings.service)
    return create_local_engine(settings, base_dir, hints)


def create_local_engine(
    settings: AsrSettings, base_dir: Path | None = None, hints: DecodeHints | None = None
) -> AsrEngine:
    """The engine named in settings (loads its model: seconds; call it off the event loop). `hints` guide a
    second decode of finals where the engine can take a prompt (faster-whisper; vosk ignores them)."""
    if settings.engine == "faster-whisper":
        from asr.faster_whisper_engine import FasterWhisperEngine

        return FasterWhisperEngine(settings, base_dir=base_dir, hints=hints if settings.second_pass else None)
    if settings.engine == "vosk":
        from asr.vosk_engine import VoskEngine

        return VoskEngine(settings, base_dir=base_dir)
    if settings.engine == "wyoming":
        from asr.wyoming_engine import WyomingEngine

        return WyomingEngine(settings)
    raise ValueError(f"unknown ASR engine {settings.engine!r}")  # pragma: no cover - Literal-checked
