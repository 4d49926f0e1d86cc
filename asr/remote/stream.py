"""A stream whose recogniser is an ASR worker, and which outlives the worker.

The stream keeps the audio since its last final (at most `replay_s`). While a worker has it, audio goes out as it
comes; when that worker is lost (connection gone or silent for `stall_ms`) the stream is opened on another and the
kept audio is replayed, so the utterance in progress is decoded whole there and nothing is missing. While no worker
can take it, the stream says so (a `status` segment), keeps what fits in `replay_s`, and reports what it had to
drop as a `gap` once a worker takes it again (also the start of an utterance a lost worker was decoding, when that
start is older than `replay_s`).

Each attachment to a worker is numbered from 0 by the worker and starts at the kept audio; the stream maps the
worker's utterance indices and times onto its own, so segment ids still count up by one per utterance and times
are from the start of the call. A partial left without its final by a lost worker is retracted (empty final).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from asr.engine import AsrStream, Segment, SegmentKind, StreamState
from asr.remote.protocol import MAX_AUDIO_BYTES, SegmentOut

if TYPE_CHECKING:
    from asr.remote.pool import WorkerLink


class Attacher(Protocol):
    """The pool, as a stream sees it."""

    replay_s: float

    def attach(self, stream: RemoteStream, exclude: frozenset[WorkerLink] = frozenset()) -> None: ...

    def forget(self, stream: RemoteStream) -> None: ...


@dataclass(eq=False)
class Attachment:
    link: WorkerLink
    channel: int
    base_sample: int  # the worker's time 0, in this stream's samples
    base_index: int  # this stream's index of the worker's utterance 0
    acked: bool = False
    sent_upto: int = 0  # samples sent to the worker so far (stream clock)
    finish_sent: bool = False


class RemoteStream(AsrStream):
    def __init__(self, pool: Attacher, stream_id: str, speaker: str, phrases: Sequence[str], sample_rate: int) -> None:
        self.stream_id = stream_id
        self.speaker = speaker
        self.sample_rate = sample_rate
        self.phrases = tuple(phrases)
        self._pool = pool
        self._out: asyncio.Queue[Segment | None] = asyncio.Queue()
        self._samples = 0  # audio pushed so far
        self._kept: collections.deque[tuple[int, bytes]] = collections.deque()  # (first sample, pcm)
        self._kept_from = 0
        self._settled = 0  # end of the last final or gap: audio before it needs no worker any more
        self._keep = int(pool.replay_s * sample_rate)
        self._lost: tuple[int, int] | None = None  # samples dropped while no worker had the stream
        self._why_lost = ""
        self.attachment: Attachment | None = None
        self._next_index = 0
        self._shown_partial: int | None = None  # a partial on screen whose final has not come
        self._status: StreamState | None = None
        self._finishing = False
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.moves = 0  # times the stream went to another worker

    # ---- AsrStream ----
    def push(self, pcm: bytes) -> None:
        if self.closed or self._finishing or not pcm:
            return
        first = self._samples
        self._kept.append((first, bytes(pcm)))
        self._samples += len(pcm) // 2
        attached = self.attachment
        if attached is not None and attached.acked:
            self._send_kept(attached)
        self._trim_to(self._samples - self._keep)

    async def segments(self) -> AsyncIterator[Segment]:
        while True:
            segment = await self._out.get()
            if segment is None:
                return
            yield segment

    async def finish(self) -> None:
        if not self.closed and not self._finishing:
            self._finishing = True
            attached = self.attachment
            if attached is not None and attached.acked:
                self._send_kept(attached)
                self._send_finish(attached)
        await asyncio.shield(self._done)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        attached, self.attachment = self.attachment, None
        if attached is not None:
            attached.link.close_channel(attached.channel)
        self._pool.forget(self)
        self._end()

    # ---- audio kept for a replay ----
    def _ms(self, samples: int) -> int:
        return samples * 1000 // self.sample_rate

    def _trim_to(self, sample: int) -> None:
        """Forget audio before `sample` (whole pieces); what no worker had becomes a lost span."""
        while self._kept:
            first, pcm = self._kept[0]
            end = first + len(pcm) // 2
            if end > sample:
                break
            self._kept.popleft()
            self._kept_from = end
            if self.attachment is None:
                lost = self._lost
                self._lost = (lost[0] if lost else first, end)

    def _send_kept(self, attached: Attachment) -> None:
        unsent: list[tuple[int, bytes]] = []
        for first, pcm in reversed(self._kept):  # what is unsent is at the end: one piece per push, usually
            if first + len(pcm) // 2 <= attached.sent_upto:
                break
            unsent.append((first, pcm))
        for first, pcm in reversed(unsent):
            end = first + len(pcm) // 2
            skip = max(0, attached.sent_upto - first) * 2
            piece = pcm[skip:]
            for at in range(0, len(piece), MAX_AUDIO_BYTES):
                attached.link.send_audio(attached.channel, piece[at : at + MAX_AUDIO_BYTES])
            attached.sent_upto = end

    def _send_finish(self, attached: Attachment) -> None:
        if not attached.finish_sent:
            attached.finish_sent = True
            attached.link.finish_channel(attached.channel)

    # ---- called by the pool ----
    def attach(self, link: WorkerLink, channel: int) -> None:
        """Opened (not yet acknowledged) on `link`: the worker's time 0 is the oldest audio kept."""
        self.attachment = Attachment(link, channel, self._kept_from, self._next_index, sent_upto=self._kept_from)

    def acknowledged(self) -> None:
        attached = self.attachment
        if attached is None or self.closed:
            return
        attached.acked = True
        if self._lost is not None:
            start, end = self._lost
            self._lost = None
            self._settled = max(self._settled, end)
            self._emit_new("gap", start, end, error=self._why_lost or "no ASR worker had this audio")
        if self._status is not None:
            self._status = None
            self._put(self._make("status", self._next_index, "", self._samples, self._samples, status="resumed"))
        self._send_kept(attached)
        if self._finishing:
            self._send_finish(attached)

    def lost_worker(self, why: str) -> None:
        """The worker that had the stream is gone: retract a partial it left on screen; the pool moves us."""
        if self.closed:
            return
        self.attachment = None
        self.moves += 1
        speaking = self._shown_partial is not None
        self._retract_partial()
        self._why_lost = why
        if speaking and self._kept_from > self._settled:  # the start of what it was decoding is no longer kept
            self._lost = (self._lost[0] if self._lost else self._settled, self._kept_from)

    def waiting(self, state: StreamState, why: str) -> None:
        """No worker takes the stream for now (none reachable, or all full): say so once."""
        self.attachment = None
        self._why_lost = why
        if self._status != state and not self.closed:
            self._status = state
            self._put(self._make("status", self._next_index, "", self._samples, self._samples, status=state, error=why))

    def received(self, message: SegmentOut) -> None:
        attached = self.attachment
        if attached is None or self.closed:
            return
        index = attached.base_index + message.index
        start = attached.base_sample + message.start_ms * self.sample_rate // 1000
        end = attached.base_sample + message.end_ms * self.sample_rate // 1000
        segment = self._make(
            message.kind,
            index,
            message.text,
            start,
            end,
            message.confidence,
            error=message.error,
            suggested=message.suggested,
        )
        self._next_index = max(self._next_index, index + 1)
        if message.kind == "partial":
            self._shown_partial = index
        elif message.kind in ("final", "gap"):
            if self._shown_partial is not None and self._shown_partial <= index:
                self._shown_partial = None
            self._settled = max(self._settled, end)
            self._trim_to(end)
        self._put(segment)

    def finished(self) -> None:
        """The worker sent the last segment after `finish`."""
        self._retract_partial()
        self.attachment = None
        self._pool.forget(self)
        self._end()

    @property
    def finishing(self) -> bool:
        return self._finishing

    # ---- output ----
    def _make(
        self,
        kind: SegmentKind,
        index: int,
        text: str,
        start: int,
        end: int,
        confidence: float = 0.0,
        *,
        error: str | None = None,
        status: StreamState | None = None,
        suggested: bool = False,
    ) -> Segment:
        return Segment(
            kind=kind,
            segment_id=f"{self.stream_id}:{index}",
            stream_id=self.stream_id,
            speaker=self.speaker,
            text=text,
            start_ms=self._ms(start),
            end_ms=self._ms(end),
            confidence=confidence,
            error=error,
            status=status,
            suggested=suggested,
        )

    def _emit_new(self, kind: SegmentKind, start: int, end: int, *, error: str) -> None:
        index = self._next_index
        self._next_index += 1
        if self.attachment is not None:
            self.attachment.base_index = self._next_index
        self._put(self._make(kind, index, "", start, end, error=error))

    def _retract_partial(self) -> None:
        index, self._shown_partial = self._shown_partial, None
        if index is not None:
            self._put(self._make("final", index, "", self._kept_from, self._kept_from))

    def _put(self, segment: Segment) -> None:
        if not self._done.done():
            self._out.put_nowait(segment)

    def _end(self) -> None:
        if not self._done.done():
            self._done.set_result(None)
            self._out.put_nowait(None)
