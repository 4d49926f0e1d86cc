"""An utterance decoded while its end is still being confirmed.

The endpoint needs `min_silence_ms` of silence (500 ms) before it closes an utterance. Once the silence has
lasted `early_decode_ms` (at least the speech pad, so the audio is exactly what the final will decode), the
utterance is decoded at once; if the endpoint then closes it with no new speech, the final uses that result
instead of starting its decode only then. An utterance of `early_decode_long_s` (4 s) of speech or more starts
sooner, at `early_decode_long_ms` (100 ms), with that much of the pause: its decode (0.3-0.5 s) outlasts the rest
of the endpoint's silence, so its final comes sooner by what it starts sooner. If the caller speaks again, the
early result is thrown away (a wasted decode: the CPU cost of the trick, measured by bench/address_call_bench.py
and bench/asr_eval.py). Most of that cost is avoided: the encoder runs first, and the decoder only if the caller
has not spoken again meanwhile (`wanted`); pauses inside a sentence are mostly 0.3-0.45 s, so the speech often
comes back during the encoder.

A final whose early decode is still running is finished by that decode's thread (`adopt`), not by a second pool
thread waiting for it: a waiting thread is a decode slot the next utterance cannot use (bench/asr_capacity.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from asr.whisper_decoder import Decoded

State = Literal["queued", "running", "done", "dropped"]


@dataclass(eq=False)
class EarlyDecode:
    """One speculative decode of the open utterance, keyed by its (start, end) samples."""

    key: tuple[int, int]
    state: State = "queued"
    result: Decoded | None = None
    error: BaseException | None = None
    _then: Callable[[Decoded | None], None] | None = None
    _unwanted: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _finished: threading.Event = field(default_factory=threading.Event)

    def run(self, decode: Callable[[], Decoded | None]) -> None:
        """Pool thread: decode unless dropped before it started (`decode` gives None when it stopped because it
        was dropped while running: see `wanted`)."""
        with self._lock:
            if self.state != "queued":
                return
            self.state = "running"
        try:
            self.result = decode()
        except Exception as exc:  # the final decodes again
            self.error = exc
        with self._lock:
            self.state = "done"
            then, self._then = self._then, None
        self._finished.set()
        if then is not None:
            then(self.result if self.error is None else None)

    def adopt(self, key: tuple[int, int], then: Callable[[Decoded | None], None]) -> bool:
        """For the final of utterance `key`: True when this decode is running for it and will call `then` with
        its result (None if it failed) on its own thread once done; False when the final needs a job of its own
        (then `claim` gives it the result of a decode already done)."""
        with self._lock:
            if self.key == key and self.state == "running":
                self._then = then
                return True
            return False

    def claim(self, key: tuple[int, int]) -> Decoded | None:
        """Pool thread, for the final of utterance `key`: the early result if it is for the same audio (waiting for
        a decode already running; a queued one is dropped: the final decodes itself, as soon)."""
        with self._lock:
            if self.key != key or self.state in ("queued", "dropped"):
                self.state = "dropped" if self.state == "queued" else self.state
                return None
        self._finished.wait()
        return self.result if self.error is None else None

    def wanted(self) -> bool:
        """Whether the result may still be used (asked by a running decode between its encoder and decoder)."""
        return not self._unwanted

    def drop(self) -> None:
        """The caller spoke again: a queued decode does not start, a running one is no longer `wanted`."""
        with self._lock:
            self._unwanted = True
            if self.state == "queued":
                self.state = "dropped"
