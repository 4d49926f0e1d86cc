"""The embedded default engine: Silero VAD endpointing + faster-whisper decodes in a shared pool.

Per stream, on an ingest lane thread: s16le -> float -> (resample) -> VAD -> utterances. A closed utterance
is submitted as a final job (priority 0). While speech goes on, every `partial_interval_ms` of new speech the
open utterance is re-decoded as a partial job (priority 1) — only if the stream has no partial in flight and
the pool has an idle worker, so partials never delay finals and are simply skipped under load. Decodes of one
utterance are bounded (see whisper_decoder). A decode that raises yields a `gap` segment for that utterance's
span; after three failures in a row the engine reloads its model ("restart"). If the ingest side raises, the
stream's VAD and resampler are rebuilt and the lost span is reported as a gap. The call goes on either way.

A final whose reading, aligned to its audio, leaves a clause out (asr.coverage: Whisper skipped the first clause or
ended early) is read again before it goes out, and the longest reading is the final.

With decode hints (asr.hints), a final whose text the hints find phrases for is decoded once more, right after the
final went out, with those phrases in the prompt; the result follows as an `alternative` segment. The lines the hints
suggest (the heard line with a misheard place name put right) are scored against the same audio; the best, if it
scores within `rescore_slack` of the heard line, follows as one more `alternative`.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from asr.audio import ASR_RATE, FloatArray, StreamResampler, pcm16_to_float
from asr.batching import Batcher
from asr.early import EarlyDecode
from asr.engine import AsrEngine, AsrStream, Segment
from asr.hints import DecodeHints
from asr.settings import AsrSettings
from asr.streaming import LaneStream, PartialSchedule, StreamRegistry
from asr.vad import Endpointer, SileroVad, Utterance, last_utterances
from asr.whisper_decoder import Decoded, Encoded, WhisperDecoder
from asr.whisper_model import load_whisper_model
from asr.workers import PRIORITY_FINAL, PRIORITY_PARTIAL, Lanes, PriorityPool

log = logging.getLogger(__name__)

SPOKEN_S = 1.0  # an utterance this long that decodes to nothing is counted and logged: words may be lost
_RESTART_AFTER_FAILURES = 3
_T = TypeVar("_T")


def _ms(samples: int) -> int:
    return samples * 1000 // ASR_RATE


class FasterWhisperEngine(AsrEngine):
    name = "faster-whisper"

    def __init__(
        self,
        settings: AsrSettings,
        base_dir: Path | None = None,
        decoder: WhisperDecoder | None = None,
        ingest_lanes: int = 1,
        hints: DecodeHints | None = None,
    ) -> None:
        self.settings = settings
        self.hints = hints
        self.second_decodes = 0
        self.rescored = 0  # second readings that were a suggested line the audio bore out (no decode)
        self.early_decodes = 0  # started
        self.early_used = 0  # that became the final
        self.early_stopped = 0  # stopped after the encoder: the caller had spoken again
        self.silent_finals = 0  # utterances of SPOKEN_S or more that decoded to no text: speech the desk never saw
        self._base_dir = base_dir
        self.decoder = decoder or WhisperDecoder(load_whisper_model(settings, base_dir), settings)
        self.vad = SileroVad()
        self.batcher: Batcher | None = None
        if settings.batch_size > 1:  # pool threads only ask and wait; the batcher's threads decode
            self.batcher = Batcher(self._decode_batch, settings.batch_size, settings.workers)
        self.pool = PriorityPool(settings.workers * settings.batch_size, name="asr-whisper")
        self.lanes = Lanes(ingest_lanes, name="asr-ingest")
        self._lock = threading.Lock()
        self._failures = 0
        self.restarts = 0
        self._registry = StreamRegistry()
        self.on_decode: Callable[[float, float], None] | None = None  # (audio s, decode s): a worker's metrics

    @property
    def active_streams(self) -> int:
        return len(self._registry)

    def open_stream(
        self, stream_id: str, speaker: str, phrases: Sequence[str] = (), *, sample_rate: int = ASR_RATE
    ) -> FasterWhisperStream:
        self._registry.ensure_open()
        return self._registry.add(FasterWhisperStream(self, stream_id, speaker, phrases, sample_rate))

    def _forget(self, stream: AsrStream) -> None:
        self._registry.discard(stream)

    def _decode_batch(
        self,
        items: Sequence[tuple[FloatArray, Sequence[int]]],
        min_input_s: float | None,
        encoded: Sequence[Encoded] | None,
    ) -> list[Decoded]:
        return self.decoder.decode_batch(items, min_input_s, encoded)  # the decoder of the moment (restarts replace it)

    def has_room(self) -> bool:
        """Whether a partial decode may start now: nothing waits, and with two or more decode threads one stays
        free for the next final (a final that finds every thread on a partial waits a whole decode: that, not
        the CPU, is what breaks final latency first; bench/asr_capacity.py)."""
        partial_threads = max(1, self.settings.workers - 1)
        if self.batcher is None:
            return self.pool.load < partial_threads
        return self.batcher.backlog == 0 and self.batcher.running < partial_threads

    def decode(
        self,
        audio: FloatArray,
        prompt: Sequence[int],
        priority: int = PRIORITY_FINAL,
        min_input_s: float | None = None,
        encoded: Encoded | None = None,
    ) -> Decoded:
        """A decode with failure accounting: the model is reloaded after repeated failures. `encoded`: the audio
        already through the encoder (an earlier result's), for a decode of it with another prompt."""
        began = time.perf_counter()
        batcher = self.batcher
        if batcher is None:
            result = self._accounted(lambda decoder: decoder.decode(audio, prompt, min_input_s, encoded))
        else:
            result = self._accounted(lambda _: batcher.decode(audio, prompt, priority, min_input_s, encoded))
        self._decoded(audio, began)
        return result

    def score(self, encoded: Encoded, prompt: Sequence[int], texts: Sequence[str]) -> list[float]:
        """Each text's log-probability as a reading of the audio behind `encoded` (WhisperDecoder.score)."""
        return self._accounted(lambda decoder: decoder.score(encoded, prompt, texts))

    def reread_if_uncovered(self, audio: FloatArray, prompt: Sequence[int], first: Decoded) -> Decoded:
        """A final's reading, read again where it left a clause out (WhisperDecoder.reread_if_uncovered)."""
        return self._accounted(lambda decoder: decoder.reread_if_uncovered(audio, prompt, first))

    def decode_if_wanted(self, audio: FloatArray, prompt: Sequence[int], wanted: Callable[[], bool]) -> Decoded | None:
        """An early decode: the encoder, then the decoder only if `wanted()` still says so (None if not). With
        batching, a batch encodes and decodes in one call, so it is decoded whole."""
        if self.batcher is not None:
            return self.decode(audio, prompt)
        began = time.perf_counter()
        encoded = self._accounted(lambda decoder: decoder.encode(audio))
        if not wanted():
            with self._lock:
                self.early_stopped += 1
            return None
        result = self._accounted(lambda decoder: decoder.decode(audio, prompt, None, encoded))
        self._decoded(audio, began)
        return result

    def _accounted(self, call: Callable[[WhisperDecoder], _T]) -> _T:
        """`call` with the decoder of the moment; after repeated failures the model is reloaded."""
        decoder = self.decoder
        try:
            result = call(decoder)
        except Exception:
            with self._lock:
                self._failures += 1
                restart = self._failures >= _RESTART_AFTER_FAILURES
                if restart:
                    self._failures = 0
            if restart:
                self._restart_decoder(decoder)
            raise
        with self._lock:
            self._failures = 0
        return result

    def _decoded(self, audio: FloatArray, began: float) -> None:
        if self.on_decode is not None:
            self.on_decode(len(audio) / ASR_RATE, time.perf_counter() - began)

    def _restart_decoder(self, failed: WhisperDecoder) -> None:
        with self._lock:
            if self.decoder is not failed:
                return
        log.warning("whisper decoder failed repeatedly: reloading the model")
        try:
            fresh = WhisperDecoder(load_whisper_model(self.settings, self._base_dir), self.settings)
        except Exception:
            log.exception("reloading the whisper model failed; keeping the old one")
            return
        with self._lock:
            self.decoder = fresh
            self.restarts += 1

    def close(self) -> None:
        if not self._registry.close_all():
            return
        self.lanes.close()
        if self.batcher is not None:
            self.batcher.close()
        self.pool.close()


class FasterWhisperStream(LaneStream):
    def __init__(
        self,
        engine: FasterWhisperEngine,
        stream_id: str,
        speaker: str,
        phrases: Sequence[str],
        sample_rate: int,
    ) -> None:
        super().__init__(engine, stream_id, speaker, sample_rate)
        self._engine = engine
        self._prompt = engine.decoder.prompt_tokens(phrases)
        self._partials = PartialSchedule(engine.settings.partial_interval_ms * ASR_RATE // 1000)
        # Ingest state, touched only on the lane thread:
        self._offset = 0  # stream samples before the current front end (it is rebuilt after a failure)
        self._new_front_end()
        vad = engine.settings.vad
        settings = engine.settings
        early = settings.early_decode_ms
        self._early_after = max(early, vad.speech_pad_ms) * ASR_RATE // 1000 if early else 0
        # A long utterance's decode outlasts the endpoint's remaining silence: it starts sooner, with less of the
        # trailing pause (the final adopts it all the same: its key is the speech, not the pad), when a decode
        # thread is free (under load the decodes wasted on pauses inside a sentence cost more than it gains).
        long_ms = settings.early_decode_long_ms or early
        self._early_after_long = min(self._early_after, long_ms * ASR_RATE // 1000) if early else 0
        self._long_speech = int(settings.early_decode_long_s * ASR_RATE)
        self._early: EarlyDecode | None = None  # lane thread sets it; pool threads read the object it points to

    def _new_front_end(self) -> None:
        cfg = self._engine.settings.vad.config()
        self._endpointer = Endpointer(self._engine.vad.new_state(), cfg)
        self._resampler = StreamResampler(self.sample_rate, ASR_RATE) if self.sample_rate != ASR_RATE else None

    @property
    def _clock(self) -> int:
        return self._offset + self._endpointer.position

    # --- lane thread ---
    def _ingest(self, pcm: bytes) -> None:
        if self._seq.closed:
            return
        try:
            audio = pcm16_to_float(pcm)
            if self._resampler is not None:
                audio = self._resampler.push(audio)
            for utterance in self._endpointer.feed(audio):
                self._submit_final(utterance)
            self._maybe_early()
            self._maybe_partial()
        except Exception as exc:
            self._restart_front_end(exc)

    def _maybe_early(self) -> None:
        """Start the decode of an utterance whose silence has begun; drop one the caller spoke past."""
        if not self._early_after:
            return
        endpointer = self._endpointer
        early = self._early
        if early is not None and endpointer.in_speech and endpointer.silence_samples() == 0:
            early.drop()  # speech again: that decode is for a shorter utterance than will close
            self._early = None
            return
        silence = endpointer.silence_samples()
        if silence < self._early_after_long:
            return
        if silence < self._early_after and (
            endpointer.speech_samples() - silence < self._long_speech or not self._engine.has_room()
        ):
            return  # short, or the decode threads are busy: a decode started on a short pause is often wasted
        utterance = endpointer.closing_utterance()
        if utterance is None:
            return
        key = (self._offset + utterance.start, self._offset + utterance.end)
        if early is not None and early.key == key:
            return
        fresh = self._early = EarlyDecode(key)
        with self._engine._lock:
            self._engine.early_decodes += 1
        decode = functools.partial(self._engine.decode_if_wanted, utterance.audio, self._prompt, fresh.wanted)
        self._engine.pool.submit(PRIORITY_FINAL, functools.partial(fresh.run, decode))

    def _flush(self) -> None:
        try:
            if not self._seq.closed:
                for utterance in last_utterances(self._endpointer, self._resampler):
                    self._submit_final(utterance)
        except Exception as exc:
            self._restart_front_end(exc)
        finally:
            self._seq.flushed()

    def _restart_front_end(self, exc: Exception) -> None:
        log.exception("asr stream %s: ingest failed, restarting its front end", self.stream_id)
        opened = self._endpointer.open_utterance()
        start = self._offset + (opened[0] if opened else self._endpointer.position)
        end = self._clock
        index = self._seq.close_utterance()
        self._seq.deliver(index, self._seq.make("gap", index, "", _ms(start), _ms(end), 0.0, error=repr(exc)))
        self._offset = end
        self._new_front_end()

    def _submit_final(self, utterance: Utterance) -> None:
        index = self._seq.close_utterance()
        early, self._early = self._early, None
        offset = self._offset
        key = (offset + utterance.start, offset + utterance.end)
        if early is not None and early.adopt(key, functools.partial(self._adopted, index, utterance, offset)):
            return
        job = functools.partial(self._decode_final, index, utterance, offset, early)
        self._engine.pool.submit(PRIORITY_FINAL, job)

    def _maybe_partial(self) -> None:
        if self._endpointer.silence_samples():
            return  # a pause: if it lasts, the early decode is next, and a partial now would only slow it down
        index = self._seq.open_index
        taken = self._partials.next_partial(self._endpointer, index, self._engine.has_room)
        if taken is None:
            return
        snap, start, audio = taken
        job = functools.partial(self._decode_partial, index, snap, self._offset + start, self._clock, audio)
        self._engine.pool.submit(PRIORITY_PARTIAL, job)

    # --- pool threads ---
    def _decode_final(self, index: int, utterance: Utterance, offset: int, early: EarlyDecode | None) -> None:
        start, end = _ms(offset + utterance.start), _ms(offset + utterance.end)
        if self._seq.closed:
            if early is not None:
                early.drop()
            self._seq.deliver(index, None)
            return
        ready = early.claim((offset + utterance.start, offset + utterance.end)) if early is not None else None
        self._finish_final(index, utterance, start, end, ready)

    def _adopted(self, index: int, utterance: Utterance, offset: int, ready: Decoded | None) -> None:
        """The early decode's thread, done: the final of the utterance it decoded (decoded again if it failed)."""
        start, end = _ms(offset + utterance.start), _ms(offset + utterance.end)
        if self._seq.closed:
            self._seq.deliver(index, None)
            return
        self._finish_final(index, utterance, start, end, ready)

    def _finish_final(self, index: int, utterance: Utterance, start: int, end: int, ready: Decoded | None) -> None:
        if ready is not None:
            with self._engine._lock:
                self._engine.early_used += 1
        try:
            result = ready or self._engine.decode(utterance.audio, self._prompt)
        except Exception as exc:
            log.exception("asr stream %s: decode failed (gap %d-%d ms)", self.stream_id, start, end)
            self._seq.deliver(index, self._seq.make("gap", index, "", start, end, 0.0, error=repr(exc)))
            return
        try:
            result = self._engine.reread_if_uncovered(utterance.audio, self._prompt, result)
        except Exception:  # the first reading still stands
            log.warning("asr stream %s: the coverage check failed", self.stream_id, exc_info=True)
        segment = None
        if result.text:
            segment = self._seq.make("final", index, result.text, start, end, round(result.confidence, 3))
        elif end - start >= SPOKEN_S * 1000:
            with self._engine._lock:
                self._engine.silent_finals += 1
            log.info(
                "asr stream %s: %d-%d ms decoded to no text (no-speech %.2f, confidence %.2f)",
                self.stream_id,
                start,
                end,
                result.no_speech_prob,
                result.confidence,
            )
        phrases, readings = self._hints(result.text)
        self._seq.deliver(index, segment, follow_up=bool(phrases or readings))
        if phrases or readings:
            second = self._second_reading(index, utterance, start, end, result, phrases) if phrases else None
            rescored = self._rescored(index, start, end, result, readings)
            if rescored is not None and second is not None and rescored.text == second.text:
                rescored = None
            self._seq.follow_up(index, second, rescored)

    def _hints(self, text: str) -> tuple[Sequence[str], Sequence[str]]:
        """Phrases for a guided decode and lines to score, from the decode hints (none without them)."""
        hints = self._engine.hints
        if hints is None or not text:
            return (), ()
        try:
            readings = hints.readings_for(text) if self._engine.settings.rescore_readings else ()
            return hints.phrases_for(text), readings
        except Exception:
            log.warning("asr stream %s: decode hints failed (no second decode)", self.stream_id, exc_info=True)
            return (), ()

    def _rescored(self, index: int, start: int, end: int, first: Decoded, readings: Sequence[str]) -> Segment | None:
        """The suggested line the audio bears out best, as a second reading; None when none scores within
        `rescore_slack` of the heard line (or scoring fails)."""
        engine = self._engine
        if not readings or first.encoded is None or self._seq.closed:
            return None
        try:
            scores = engine.score(first.encoded, self._prompt, [first.text, *readings])
        except Exception:
            log.warning("asr stream %s: scoring the suggested lines failed", self.stream_id, exc_info=True)
            return None
        best = max(range(len(readings)), key=lambda i: scores[i + 1])
        if scores[best + 1] < scores[0] - engine.settings.rescore_slack:
            return None
        with engine._lock:
            engine.rescored += 1
        confidence = round(first.confidence, 3)
        return self._seq.make("alternative", index, readings[best], start, end, confidence, suggested=True)

    def _second_reading(
        self, index: int, utterance: Utterance, start: int, end: int, first: Decoded, phrases: Sequence[str]
    ) -> Segment | None:
        """The utterance decoded again with the hinted phrases (from the first reading's encoder output); None when
        it fails or reads the same."""
        engine = self._engine
        if self._seq.closed:
            return None
        try:
            prompt = engine.decoder.prompt_tokens(phrases, engine.settings.hint_prompt_tokens)
            result = engine.decode(utterance.audio, prompt, PRIORITY_PARTIAL, encoded=first.encoded)  # after finals
        except Exception:
            log.warning("asr stream %s: second decode failed", self.stream_id, exc_info=True)
            return None
        with engine._lock:
            engine.second_decodes += 1
        if not result.text or result.text == first.text:
            return None
        return self._seq.make("alternative", index, result.text, start, end, round(result.confidence, 3))

    def _decode_partial(self, index: int, snap: int, start: int, end: int, audio: FloatArray) -> None:
        try:
            if not self._seq.is_open(index):
                return
            engine = self._engine
            audio = np.asarray(audio, dtype=np.float32)
            result = engine.decode(audio, self._prompt, PRIORITY_PARTIAL, engine.settings.partial_min_input_s)
            if result.text:
                confidence = round(result.confidence, 3)
                segment = self._seq.make("partial", index, result.text, _ms(start), _ms(end), confidence)
                self._seq.partial(index, snap, segment)
        except Exception:
            log.warning("asr stream %s: partial decode failed (skipped)", self.stream_id, exc_info=True)
        finally:
            self._partials.done()
