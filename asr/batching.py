"""Cross-stream batching: decodes asked for by many streams at once run as one CTranslate2 call.

The engine's pool threads pick jobs finals first; each asks the batcher for its decode and waits. The batcher's
thread takes the most urgent request (finals before partials, then the oldest) and the next most urgent ones it can
run with it (up to `max_batch`, with a prompt of the same length: CTranslate2's Whisper needs the start token at
one position in a batch; and the same padding), and
runs them together; the encoder and each decoder step then work on a matrix instead of a vector. Nothing waits
for a batch to fill: a batch is whatever queued up while the previous one ran, so one stream alone is decoded as
before.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from asr.audio import FloatArray
from asr.whisper_decoder import Decoded, Encoded

log = logging.getLogger(__name__)

BatchDecode = Callable[
    [Sequence[tuple[FloatArray, Sequence[int]]], float | None, Sequence[Encoded] | None], list[Decoded]
]


@dataclass(eq=False)
class _Request:
    priority: int  # lower first: finals (0) before partials and second readings (1)
    seq: int
    audio: FloatArray
    prompt: Sequence[int]
    min_input_s: float | None  # the padding asked for (one per batch)
    encoded: Encoded | None  # the audio already through the encoder (a second reading): batched with its like
    result: concurrent.futures.Future[Decoded] = field(default_factory=concurrent.futures.Future)


def _batch_key(request: _Request) -> tuple[object, ...]:
    """What the decodes of one batch share: the prompt's length, the padding, and encoded audio of one shape or
    none."""
    shape = None if request.encoded is None else request.encoded.shape
    return (len(request.prompt), request.min_input_s, shape)


class Batcher:
    def __init__(self, decode_batch: BatchDecode, max_batch: int, threads: int = 1) -> None:
        if max_batch < 1 or threads < 1:
            raise ValueError("a batch holds at least one decode, on at least one thread")
        self._decode_batch = decode_batch
        self.max_batch = max_batch
        self._waiting: list[_Request] = []
        self._seq = itertools.count()
        self._ready = threading.Condition()
        self._closed = False
        self.batches = 0
        self.decodes = 0
        self.running = 0  # batches being decoded now
        self._threads = [threading.Thread(target=self._run, name=f"asr-batch-{i}", daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    @property
    def backlog(self) -> int:
        """Decodes waiting for a batch."""
        with self._ready:
            return len(self._waiting)

    def decode(
        self,
        audio: FloatArray,
        prompt: Sequence[int],
        priority: int = 0,
        min_input_s: float | None = None,
        encoded: Encoded | None = None,
    ) -> Decoded:
        """Blocking: the decode of this utterance, run in whichever batch it lands in."""
        request = _Request(priority, next(self._seq), audio, prompt, min_input_s, encoded)
        with self._ready:
            if self._closed:
                raise RuntimeError("batcher is closed")
            self._waiting.append(request)
            self._ready.notify()
        return request.result.result()

    def _take(self) -> list[_Request] | None:
        with self._ready:
            while not self._waiting and not self._closed:
                self._ready.wait()
            if not self._waiting:
                return None
            ordered = sorted(self._waiting, key=lambda r: (r.priority, r.seq))
            first = ordered[0]
            batch = [r for r in ordered if _batch_key(r) == _batch_key(first)][: self.max_batch]
            taken = set(map(id, batch))
            self._waiting = [r for r in self._waiting if id(r) not in taken]
            self.running += 1
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                encoded = [r.encoded for r in batch if r.encoded is not None]
                items = [(r.audio, r.prompt) for r in batch]
                results = self._decode_batch(items, batch[0].min_input_s, encoded or None)
            except Exception as exc:  # every decode of the batch failed: each stream reports its gap
                with self._ready:
                    self.running -= 1
                for request in batch:
                    request.result.set_exception(exc)
                continue
            with self._ready:
                self.running -= 1
                self.batches += 1
                self.decodes += len(batch)
            for request, result in zip(batch, results, strict=True):
                request.result.set_result(result)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            waiting, self._waiting = self._waiting, []
            self._ready.notify_all()
        for request in waiting:
            request.result.set_exception(RuntimeError("batcher is closed"))
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=30)
