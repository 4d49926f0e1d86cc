"""The ASR worker protocol (version 1): many streams over one WebSocket, audio in binary frames, JSON for the rest.

A binary frame is a 4-byte big-endian channel number followed by s16le mono PCM at the rate the channel was opened
with. Text frames are JSON objects with a `type`; `ClientMessage` are what a client sends, `WorkerMessage` what a
worker sends. Everything is bounded: a bad frame gets an `error` message and the connection goes on.
"""

from __future__ import annotations

import struct
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from asr.engine import Segment, SegmentKind

PROTOCOL_VERSION = 1
STREAM_PATH = "/v1/stream"
MAX_TEXT_FRAME = 64 * 1024
MAX_AUDIO_BYTES = 512 * 1024  # 16 s of 16 kHz audio in one frame: replays are sent in smaller pieces
MAX_FRAME = MAX_AUDIO_BYTES + 4
_CHANNEL = struct.Struct(">I")

Channel = Annotated[int, Field(ge=1, le=2**31 - 1)]
RefusedReason = Literal["full", "draining", "channel_in_use"]
ErrorCode = Literal["bad_json", "bad_message", "bad_audio", "unknown_channel", "too_large", "too_fast"]
AUDIO_AHEAD_S = 150.0  # audio a channel may send beyond real time: a replay (replay_s is at most 120 s) and jitter


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- client -> worker ----
class Open(_Message):
    type: Literal["open"] = "open"
    channel: Channel
    stream_id: str = Field(min_length=1, max_length=160)
    speaker: str = Field(min_length=1, max_length=32)
    sample_rate: int = Field(16000, ge=8000, le=48000)
    phrases: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=400)


class Finish(_Message):
    """Flush: the utterance in progress becomes a final; `finished` follows the last segment."""

    type: Literal["finish"] = "finish"
    channel: Channel


class Close(_Message):
    """Drop the stream now (nothing more is sent for it)."""

    type: Literal["close"] = "close"
    channel: Channel


ClientMessage = Annotated[Open | Finish | Close, Field(discriminator="type")]
CLIENT_MESSAGES: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


# ---- worker -> client ----
class Hello(_Message):
    type: Literal["hello"] = "hello"
    protocol: int = PROTOCOL_VERSION
    worker: str
    engine: str
    capacity: int


class Load(_Message):
    """Sent every heartbeat: a client that hears nothing for `stall_ms` takes the worker for lost."""

    type: Literal["load"] = "load"
    streams: int
    capacity: int
    queue: int = Field(description="Decodes running or waiting.")
    draining: bool = False


class Opened(_Message):
    type: Literal["opened"] = "opened"
    channel: Channel


class Refused(_Message):
    type: Literal["refused"] = "refused"
    channel: Channel
    reason: RefusedReason


class SegmentOut(_Message):
    """A segment of a channel; `index` counts the channel's utterances from 0 (partials share their final's)."""

    type: Literal["segment"] = "segment"
    channel: Channel
    kind: SegmentKind
    index: int = Field(ge=0)
    text: str = Field(max_length=4000)
    start_ms: int = Field(ge=0)
    end_ms: int = Field(ge=0)
    confidence: float = Field(ge=0, le=1)
    error: str | None = Field(None, max_length=500)
    suggested: bool = False  # an alternative that is the final with one span put right (asr/engine.py)


class Finished(_Message):
    """The channel's last segment has been sent (after `finish`); the channel is free again."""

    type: Literal["finished"] = "finished"
    channel: Channel


class Error(_Message):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str = Field(max_length=500)
    channel: int | None = None


WorkerMessage = Annotated[Hello | Load | Opened | Refused | SegmentOut | Finished | Error, Field(discriminator="type")]
WORKER_MESSAGES: TypeAdapter[WorkerMessage] = TypeAdapter(WorkerMessage)


class ProtocolError(ValueError):
    def __init__(self, code: ErrorCode, message: str, channel: int | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.channel = channel

    def message(self) -> Error:
        return Error(code=self.code, message=str(self)[:500], channel=self.channel)


def pack_audio(channel: int, pcm: bytes) -> bytes:
    return _CHANNEL.pack(channel) + pcm


def unpack_audio(frame: bytes) -> tuple[int, bytes]:
    """(channel, pcm) of a binary frame; ProtocolError when it cannot be one."""
    if len(frame) < _CHANNEL.size:
        raise ProtocolError("bad_audio", "a binary frame starts with a 4-byte channel number")
    (channel,) = _CHANNEL.unpack_from(frame)
    pcm = frame[_CHANNEL.size :]
    if len(pcm) % 2:
        raise ProtocolError("bad_audio", "audio is 16-bit PCM: an even number of bytes", channel)
    if len(pcm) > MAX_AUDIO_BYTES:
        raise ProtocolError("too_large", f"at most {MAX_AUDIO_BYTES} bytes of audio per frame", channel)
    return channel, pcm


def parse_client(text: str) -> Open | Finish | Close:
    if len(text) > MAX_TEXT_FRAME:
        raise ProtocolError("too_large", f"text frames are at most {MAX_TEXT_FRAME} bytes")
    try:
        return CLIENT_MESSAGES.validate_json(text)
    except ValidationError as exc:
        code: ErrorCode = "bad_json" if any(e["type"] == "json_invalid" for e in exc.errors()) else "bad_message"
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ProtocolError(code, f"{where}: {first['msg']}" if where else str(first["msg"])) from None


def parse_worker(text: str | bytes) -> Hello | Load | Opened | Refused | SegmentOut | Finished | Error:
    return WORKER_MESSAGES.validate_json(text)


def segment_message(channel: int, segment: Segment) -> SegmentOut:
    index = int(segment.segment_id.rsplit(":", 1)[1])
    return SegmentOut(
        channel=channel,
        kind=segment.kind,
        index=index,
        text=segment.text[:4000],
        start_ms=segment.start_ms,
        end_ms=max(segment.end_ms, 0),
        confidence=min(max(segment.confidence, 0.0), 1.0),
        error=segment.error[:500] if segment.error else None,
        suggested=segment.suggested,
    )
