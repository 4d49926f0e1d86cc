"""What every stream shares: handing segments from worker threads to the event loop in order, and finish().

`Sequencer` numbers utterances as they close (n = 0, 1, 2 ...). Workers may complete them out of order
(several decode threads); finals and gaps are released strictly in n order. A partial is released only while
its utterance is still the open one, and only if it is newer than the last partial released for it, so a
partial never follows its own final. An utterance whose partials were shown always ends with a final (empty
text if the decode found nothing), so no partial is left on screen.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import functools
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from asr.engine import AsrStream, Segment, SegmentKind, StreamState, running_loop
from asr.workers import Lanes

if TYPE_CHECKING:  # only the engines with an endpointer use PartialSchedule.next_partial
    from asr.audio import FloatArray
    from asr.vad import Endpointer

_END = object()


class SegmentSink:
    """A thread-safe, one-consumer channel into the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._ended = False
        self._lock = threading.Lock()

    def _call(self, item: object) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed: nobody is listening any more
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def put(self, segment: Segment) -> None:
        with self._lock:
            if not self._ended:
                self._call(segment)

    def end(self) -> None:
        with self._lock:
            if not self._ended:
                self._ended = True
                self._call(_END)

    async def __aiter__(self) -> AsyncIterator[Segment]:
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            assert isinstance(item, Segment)
            yield item


class Sequencer:
    """Orders one stream's output and tracks what finish() waits for. All methods are thread-safe."""

    def __init__(self, stream_id: str, speaker: str, sink: SegmentSink, loop: asyncio.AbstractEventLoop) -> None:
        self.stream_id = stream_id
        self.speaker = speaker
        self._sink = sink
        self._loop = loop
        self._lock = threading.Lock()
        self._open = 0  # index of the utterance in progress (the next to close)
        self._release_next = 0
        self._done: dict[int, Segment | None] = {}
        self._partial_seq: dict[int, int] = {}
        self._last_partial: dict[int, Segment] = {}
        self._flushed = False
        self._awaited: set[int] = set()  # finals released or due whose alternative is still being decoded
        self._follow: dict[int, list[Segment]] = {}  # alternatives waiting for their final to be released
        self._finished: asyncio.Future[None] | None = None
        self.closed = False

    def segment_id(self, index: int) -> str:
        return f"{self.stream_id}:{index}"

    @property
    def open_index(self) -> int:
        with self._lock:
            return self._open

    def make(
        self,
        kind: SegmentKind,
        index: int,
        text: str,
        start_ms: int,
        end_ms: int,
        confidence: float,
        error: str | None = None,
        status: StreamState | None = None,
        suggested: bool = False,
    ) -> Segment:
        return Segment(
            kind=kind,
            segment_id=self.segment_id(index),
            stream_id=self.stream_id,
            speaker=self.speaker,
            text=text,
            start_ms=start_ms,
            end_ms=end_ms,
            confidence=confidence,
            error=error,
            status=status,
            suggested=suggested,
        )

    def close_utterance(self) -> int:
        """The open utterance closes (its final or gap will follow): its index; the next one opens."""
        with self._lock:
            index = self._open
            self._open += 1
            return index

    def deliver(self, index: int, segment: Segment | None, *, follow_up: bool = False) -> None:
        """The result of a closed utterance, released in index order. None: nothing was said after all; if
        partials of it were shown, a final with empty text retracts them (a partial never stays orphaned).
        `follow_up`: an alternative reading of it will come (`follow_up()`); finish() waits for it."""
        with self._lock:
            if follow_up:
                self._awaited.add(index)
            self._done[index] = segment
            while self._release_next in self._done:
                item = self._done.pop(self._release_next)
                self._partial_seq.pop(self._release_next, None)
                shown = self._last_partial.pop(self._release_next, None)
                self._release_next += 1
                if item is None and shown is not None:
                    item = dataclasses.replace(shown, kind="final", text="", confidence=0.0)
                if item is not None and not self.closed:
                    self._sink.put(item)
                for alternative in self._follow.pop(self._release_next - 1, []):
                    if not self.closed:
                        self._sink.put(alternative)
            self._check_done_locked()

    def follow_up(self, index: int, *segments: Segment | None) -> None:
        """The alternative readings of utterance `index` (None, or none: there is none after all), released in
        this order right after its final (at once if that is out already)."""
        with self._lock:
            self._awaited.discard(index)
            for segment in segments:
                if segment is None or self.closed:
                    continue
                if index < self._release_next:
                    self._sink.put(segment)
                else:
                    self._follow.setdefault(index, []).append(segment)
            self._check_done_locked()

    def partial(self, index: int, seq: int, segment: Segment) -> bool:
        """Release a partial of utterance `index` made from snapshot `seq` if still current."""
        with self._lock:
            if self.closed or index != self._open or seq <= self._partial_seq.get(index, -1):
                return False
            self._partial_seq[index] = seq
            self._last_partial[index] = segment
            self._sink.put(segment)
            return True

    def is_open(self, index: int) -> bool:
        with self._lock:
            return not self.closed and index == self._open

    def start_finish(self) -> asyncio.Future[None]:
        """Called on the event loop by finish(): the future completes once flushed and every final is out."""
        with self._lock:
            if self._finished is None:
                self._finished = self._loop.create_future()
                if self.closed:
                    self._finished.set_result(None)
            return self._finished

    def flushed(self) -> None:
        """The stream's worker has pushed its last utterance (no more close_utterance calls)."""
        with self._lock:
            self._flushed = True
            self._check_done_locked()

    def _check_done_locked(self) -> None:
        if self._flushed and self._release_next >= self._open and not self._awaited:
            self._sink.end()
            self._resolve_locked()

    def _resolve_locked(self) -> None:
        future = self._finished
        if future is None:
            return

        def _set() -> None:
            if not future.done():
                future.set_result(None)

        self._call_soon(_set)

    def _call_soon(self, fn: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(fn)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._sink.end()
            self._resolve_locked()


class LaneOwner(Protocol):
    """The engine side a `LaneStream` needs: the ingest lanes, and to be told when a stream is gone."""

    @property
    def lanes(self) -> Lanes: ...

    def _forget(self, stream: AsrStream) -> None: ...


class LaneStream(AsrStream):
    """A stream whose audio is ingested, in order, on one lane thread (every engine's life cycle is the same:
    push queues, finish() flushes and waits for the last final, close() drops everything)."""

    def __init__(self, engine: LaneOwner, stream_id: str, speaker: str, sample_rate: int) -> None:
        self.stream_id = stream_id
        self.speaker = speaker
        self.sample_rate = sample_rate
        self._owner = engine
        self._loop = running_loop()
        self._sink = SegmentSink(self._loop)
        self._seq = Sequencer(stream_id, speaker, self._sink, self._loop)
        self._lane = engine.lanes.assign()
        self._accepting = True

    @abc.abstractmethod
    def _ingest(self, pcm: bytes) -> None:
        """Lane thread: take in audio."""

    @abc.abstractmethod
    def _flush(self) -> None:
        """Lane thread: close the open utterance; the sequencer then ends the stream."""

    def push(self, pcm: bytes) -> None:
        if not self._accepting or not pcm:
            return
        self._owner.lanes.submit(self._lane, functools.partial(self._ingest, bytes(pcm)))

    async def segments(self) -> AsyncIterator[Segment]:
        async for segment in self._sink:
            yield segment

    async def finish(self) -> None:
        if self._accepting and not self._seq.closed:
            self._accepting = False
            future = self._seq.start_finish()
            self._owner.lanes.submit(self._lane, self._flush)
        else:
            future = self._seq.start_finish()
        await future
        self._owner._forget(self)

    def close(self) -> None:
        self._accepting = False
        self._seq.close()
        self._owner._forget(self)


S = TypeVar("S", bound=AsrStream)


class StreamRegistry:
    """The streams an engine has open (thread-safe): what `active_streams` counts and the engine's close() closes."""

    def __init__(self) -> None:
        self._streams: set[AsrStream] = set()
        self._lock = threading.Lock()
        self.closed = False

    def __len__(self) -> int:
        with self._lock:
            return len(self._streams)

    def ensure_open(self) -> None:
        if self.closed:
            raise RuntimeError("engine is closed")

    def add(self, stream: S) -> S:
        with self._lock:
            self._streams.add(stream)
        return stream

    def discard(self, stream: AsrStream) -> None:
        with self._lock:
            self._streams.discard(stream)

    def close_all(self) -> bool:
        """Close every stream; False when that was done already (the engine then has nothing more to stop)."""
        if self.closed:
            return False
        self.closed = True
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.close()
        return True


class PartialSchedule:
    """When a stream's open utterance is due a partial: after every `interval` samples of its speech, one at a time.
    The lane thread asks `due` and `take`s; whoever ran the partial says `done`."""

    def __init__(self, interval: int) -> None:
        self.interval = interval
        self._index = -1  # the utterance the counters refer to
        self._at = 0  # its speech samples when its last partial was taken
        self._snap = 0
        self._busy = threading.Event()

    def due(self, index: int, speech: int) -> bool:
        if index != self._index:
            self._index, self._at = index, 0
        return speech > 0 and speech - self._at >= self.interval and not self._busy.is_set()

    def take(self, speech: int) -> int:
        """A partial of `speech` samples starts: its snapshot number (newer partials have larger ones)."""
        self._at = speech
        self._snap += 1
        self._busy.set()
        return self._snap

    def done(self) -> None:
        self._busy.clear()

    def next_partial(
        self, endpointer: Endpointer, index: int, has_room: Callable[[], bool]
    ) -> tuple[int, int, FloatArray] | None:
        """(snapshot, start sample, audio) of open utterance `index` when a partial of it is due and there is room."""
        speech = endpointer.speech_samples()
        if not self.due(index, speech) or not has_room():
            return None
        opened = endpointer.open_utterance()
        if opened is None:
            return None
        start, audio = opened
        return self.take(speech), start, audio
