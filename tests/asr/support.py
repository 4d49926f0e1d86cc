"""Helpers for the ASR tests: build streams of real speech and push them like a media tap does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from asr.audio import ASR_RATE, FloatArray, float_to_pcm16
from asr.engine import AsrStream, Segment
from tools.asr_eval.corpus import Clip


def with_silence(
    parts: Sequence[FloatArray], gap_s: float = 1.5, lead_s: float = 0.5, tail_s: float = 1.0, noise: float = 0.0
) -> FloatArray:
    """Clips joined by silences (what a caller sounds like between sentences), optionally with a faint noise
    floor over everything (a phone line is never digital silence; Kaldi's endpointing needs that)."""
    rate = ASR_RATE
    pieces: list[FloatArray] = [np.zeros(int(lead_s * rate), np.float32)]
    for i, part in enumerate(parts):
        if i:
            pieces.append(np.zeros(int(gap_s * rate), np.float32))
        pieces.append(part.astype(np.float32))
    pieces.append(np.zeros(int(tail_s * rate), np.float32))
    audio = np.concatenate(pieces)
    if noise:
        audio = audio + np.random.default_rng(12345).normal(0.0, noise, len(audio)).astype(np.float32)
    return audio


@dataclass
class Received:
    segment: Segment
    at: float  # seconds since streaming began


@dataclass
class StreamRun:
    received: list[Received] = field(default_factory=list)

    @property
    def segments(self) -> list[Segment]:
        return [r.segment for r in self.received]

    def finals(self) -> list[Segment]:
        return [s for s in self.segments if s.kind == "final"]

    def partials(self) -> list[Segment]:
        return [s for s in self.segments if s.kind == "partial"]

    def gaps(self) -> list[Segment]:
        return [s for s in self.segments if s.kind == "gap"]

    def final_text(self) -> str:
        return "".join(s.text for s in self.finals())


async def run_stream(
    stream: AsrStream,
    pcm: bytes,
    *,
    frame_bytes: int = 640,
    speed: float = 4.0,
    finish: bool = True,
) -> StreamRun:
    """Push `pcm` in frames (640 bytes = 20 ms at 16 kHz) at `speed` x real time, then finish(); collect all."""
    run = StreamRun()
    start = time.monotonic()

    async def collect() -> None:
        async for segment in stream.segments():
            run.received.append(Received(segment, time.monotonic() - start))

    collector = asyncio.create_task(collect())
    frame_s = frame_bytes / 2 / stream.sample_rate
    for n, offset in enumerate(range(0, len(pcm), frame_bytes)):
        stream.push(pcm[offset : offset + frame_bytes])
        due = start + (n + 1) * frame_s / speed
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    if finish:
        await stream.finish()
    else:
        stream.close()
    await asyncio.wait_for(collector, timeout=120)
    return run


def pcm_of(audio: FloatArray) -> bytes:
    return float_to_pcm16(audio)


def clip_audio(clips: Sequence[Clip]) -> list[FloatArray]:
    return [clip.audio() for clip in clips]
