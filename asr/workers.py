"""Worker threads for the engines: a shared priority pool for decodes and ordered lanes for per-stream work.

Heavy work (CTranslate2, onnxruntime, Kaldi) releases the GIL, so threads give real parallelism here; the
event loop only appends bytes to queues. Every thread is named `asr-...` and is joined by `close()`, so
streams never own threads and opening or closing streams cannot leak any.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

PRIORITY_FINAL = 0
PRIORITY_PARTIAL = 1
_STOP = 99


@dataclass(order=True)
class _Job:
    priority: int
    seq: int
    fn: Callable[[], None] | None = field(compare=False)


class PriorityPool:
    """N threads taking jobs by (priority, arrival): finals (0) before partials (1) when the pool is busy.

    A job must handle its own errors; an exception that escapes is logged and the thread goes on.
    """

    def __init__(self, workers: int, name: str = "asr-decode") -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self.workers = workers
        self._queue: queue.PriorityQueue[_Job] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._running = 0
        self._closed = False
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, priority: int, fn: Callable[[], None]) -> None:
        if self._closed:
            raise RuntimeError("pool is closed")
        self._queue.put(_Job(priority, next(self._seq), fn))

    @property
    def load(self) -> int:
        """Jobs running plus jobs waiting."""
        with self._lock:
            return self._running + self._queue.qsize()

    def has_room(self) -> bool:
        """True when a new job would start at once (a worker is idle and nothing waits)."""
        return self.load < self.workers

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job.fn is None:
                return
            with self._lock:
                self._running += 1
            try:
                job.fn()
            except Exception:  # pragma: no cover - jobs handle their errors; this is the last guard
                log.exception("asr worker job failed")
            finally:
                with self._lock:
                    self._running -= 1

    def close(self) -> None:
        """Finish queued jobs' dequeueing quickly: stop markers go behind them; join every thread."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._queue.put(_Job(_STOP, next(self._seq), None))
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=30)


class Lanes:
    """K threads, each with its own FIFO: work for one stream always runs on the same lane, in order."""

    def __init__(self, lanes: int, name: str = "asr-lane") -> None:
        if lanes < 1:
            raise ValueError("at least one lane")
        self._queues: list[queue.SimpleQueue[Callable[[], None] | None]] = [queue.SimpleQueue() for _ in range(lanes)]
        self._next = itertools.count()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._run, args=(q,), name=f"{name}-{i}", daemon=True)
            for i, q in enumerate(self._queues)
        ]
        for thread in self._threads:
            thread.start()

    def assign(self) -> int:
        """A lane for a new stream (round robin)."""
        return next(self._next) % len(self._queues)

    def submit(self, lane: int, fn: Callable[[], None]) -> None:
        if self._closed:
            raise RuntimeError("lanes are closed")
        self._queues[lane].put(fn)

    @staticmethod
    def _run(q: queue.SimpleQueue[Callable[[], None] | None]) -> None:
        while True:
            fn = q.get()
            if fn is None:
                return
            try:
                fn()
            except Exception:  # pragma: no cover - stream tasks handle their errors
                log.exception("asr lane task failed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for q in self._queues:
            q.put(None)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=30)
