"""Endpointing: the Silero VAD (ONNX model shipped inside faster-whisper) run frame by frame, and an utterance
segmenter on top of it.

The model takes 32 ms chunks (512 samples at 16 kHz) with 64 samples of left context and carries an LSTM
state (h, c); fed chunk by chunk with that state it gives exactly the probabilities of faster-whisper's
offline `SileroVADModel` over the whole file. One ONNX session is shared by every stream (onnxruntime
sessions are safe to run from several threads); each stream keeps its own state. Cost: about 0.1 ms of one
core per chunk.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from asr.audio import ASR_RATE, FloatArray, StreamResampler

CHUNK = 512
_CONTEXT = 64


def silero_model_path() -> Path:
    """The Silero VAD ONNX file that the installed faster-whisper ships."""
    path = Path(str(importlib.resources.files("faster_whisper") / "assets" / "silero_vad_v6.onnx"))
    if not path.is_file():
        raise FileNotFoundError(f"Silero VAD model not found at {path} (is faster-whisper 1.2 installed?)")
    return path


class SileroVad:
    """A shared ONNX session; `new_state()` for each stream."""

    def __init__(self, path: Path | None = None) -> None:
        import onnxruntime  # type: ignore[import-untyped]

        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.enable_cpu_mem_arena = False
        opts.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(path or silero_model_path()), providers=["CPUExecutionProvider"], sess_options=opts
        )

    def new_state(self) -> VadState:
        return VadState(self)

    def run(self, chunks: FloatArray, h: FloatArray, c: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        probs, h2, c2 = self._session.run(None, {"input": chunks, "h": h, "c": c})
        return (
            np.asarray(probs, dtype=np.float32).reshape(-1),
            np.asarray(h2, dtype=np.float32),
            np.asarray(c2, dtype=np.float32),
        )


class VadState:
    """One stream's VAD: push 16 kHz audio, get one speech probability per complete 512-sample chunk."""

    def __init__(self, vad: SileroVad) -> None:
        self._vad = vad
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)

    def probabilities(self, chunks: FloatArray) -> FloatArray:
        """Speech probability of each row of `chunks` (shape [n, 512]), in order."""
        if len(chunks) == 0:
            return np.zeros(0, dtype=np.float32)
        contexts = np.concatenate([self._context[None, :], chunks[:-1, -_CONTEXT:]], axis=0)
        batch = np.ascontiguousarray(np.concatenate([contexts, chunks], axis=1), dtype=np.float32)
        probs, self._h, self._c = self._vad.run(batch, self._h, self._c)
        self._context = chunks[-1, -_CONTEXT:].copy()
        return probs


@dataclass(frozen=True)
class VadConfig:
    threshold: float = 0.4
    neg_threshold: float = 0.35
    min_silence_ms: int = 500
    min_speech_ms: int = 250
    speech_pad_ms: int = 200
    max_utterance_s: float = 15.0


@dataclass(frozen=True)
class Utterance:
    """A closed stretch of speech. Sample positions count from the start of the stream (16 kHz)."""

    start: int  # first sample of speech
    end: int  # last sample of speech (exclusive)
    audio: FloatArray  # speech with up to speech_pad_ms of context each side


class Endpointer:
    """Splits a 16 kHz stream into utterances: speech starts at a chunk with p >= threshold, ends after
    `min_silence_ms` below `neg_threshold`; an utterance longer than `max_utterance_s` is cut (at the last
    pause of the final 3 s if there was one). Chunks between the thresholds extend a pause once it began.
    """

    def __init__(self, state: VadState, config: VadConfig) -> None:
        self._vad = state
        self.config = config
        self._ms = ASR_RATE // 1000
        self._pad = config.speech_pad_ms * self._ms
        self._pending = np.zeros(0, dtype=np.float32)  # < CHUNK samples not yet classified
        self._position = 0  # samples classified so far
        self._preroll = np.zeros(0, dtype=np.float32)
        self._in_speech = False
        self._buffer: list[FloatArray] = []
        self._buffer_start = 0  # sample index of the buffer's first sample
        self._buffer_len = 0
        self._speech_start = 0
        self._last_speech_end = 0
        self._silence = 0
        self._last_pause = -1  # end of the most recent low-probability chunk inside the utterance

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def position(self) -> int:
        """Samples received and classified (the stream's clock)."""
        return self._position

    def open_utterance(self) -> tuple[int, FloatArray] | None:
        """Start sample and a copy of the audio of the utterance in progress, or None between utterances."""
        if not self._in_speech or not self._buffer:
            return None
        return self._speech_start, np.concatenate(self._buffer)

    def silence_samples(self) -> int:
        """Samples of silence since the open utterance's last speech (0 while speaking or between utterances)."""
        return self._silence if self._in_speech else 0

    def closing_utterance(self) -> Utterance | None:
        """The open utterance as it would close now if the silence that began holds (same audio as the close
        will give once the silence is longer than the speech pad); None between utterances or if too short."""
        if not self._in_speech or not self._buffer or not self._silence:
            return None
        speech_end = self._last_speech_end
        if speech_end - self._speech_start < self.config.min_speech_ms * self._ms:
            return None
        audio = np.concatenate(self._buffer)
        cut = min(speech_end + self._pad, self._position)
        return Utterance(start=self._speech_start, end=speech_end, audio=audio[: max(0, cut - self._buffer_start)])

    def speech_samples(self) -> int:
        """Samples of the open utterance so far (0 when there is none)."""
        return self._position - self._speech_start if self._in_speech else 0

    def feed(self, audio: npt.NDArray[np.float32]) -> list[Utterance]:
        """Classify new audio; return the utterances it closed."""
        data = np.concatenate([self._pending, audio]) if len(self._pending) else np.asarray(audio, np.float32)
        n = len(data) // CHUNK
        self._pending = data[n * CHUNK :].copy()
        if n == 0:
            return []
        chunks = data[: n * CHUNK].reshape(n, CHUNK)
        probs = self._vad.probabilities(chunks)
        closed: list[Utterance] = []
        for chunk, prob in zip(chunks, probs, strict=True):
            utterance = self._step(chunk, float(prob))
            if utterance is not None:
                closed.append(utterance)
        return closed

    def flush(self) -> Utterance | None:
        """End of stream: the open utterance (with any unclassified tail) as a final, if it holds speech."""
        if self._in_speech and len(self._pending):
            self._append(self._pending)
            self._position += len(self._pending)
            if self._silence == 0:
                self._last_speech_end = self._position
        self._pending = np.zeros(0, dtype=np.float32)
        if not self._in_speech:
            return None
        return self._close(self._last_speech_end if self._silence else self._position)

    def _append(self, chunk: FloatArray) -> None:
        self._buffer.append(chunk)
        self._buffer_len += len(chunk)

    def _step(self, chunk: FloatArray, prob: float) -> Utterance | None:
        cfg = self.config
        start = self._position
        self._position += CHUNK
        if not self._in_speech:
            if prob >= cfg.threshold:
                self._in_speech = True
                self._buffer = [self._preroll, chunk] if len(self._preroll) else [chunk]
                self._buffer_len = len(self._preroll) + CHUNK
                self._buffer_start = start - len(self._preroll)
                self._speech_start = start
                self._last_speech_end = self._position
                self._silence = 0
                self._last_pause = -1
                self._preroll = np.zeros(0, dtype=np.float32)
            else:
                self._preroll = np.concatenate([self._preroll, chunk])[-self._pad :] if self._pad else self._preroll
            return None
        self._append(chunk)
        if prob >= cfg.threshold:
            self._silence = 0
            self._last_speech_end = self._position
        elif prob < cfg.neg_threshold or self._silence:
            self._silence += CHUNK
            self._last_pause = self._position
        if self._silence >= cfg.min_silence_ms * self._ms:
            return self._close(self._last_speech_end)
        if self._position - self._speech_start >= int(cfg.max_utterance_s * ASR_RATE):
            if self._silence:  # already in a pause: end here
                return self._close(self._last_speech_end)
            cut = self._last_pause if self._last_pause > self._position - 3 * ASR_RATE else self._position
            return self._close(cut, continue_speech=True)
        return None

    def _close(self, speech_end: int, continue_speech: bool = False) -> Utterance | None:
        audio = np.concatenate(self._buffer) if self._buffer else np.zeros(0, dtype=np.float32)
        cut = min(speech_end + self._pad, self._position) if not continue_speech else speech_end
        utt_audio = audio[: max(0, cut - self._buffer_start)]
        rest = audio[max(0, cut - self._buffer_start) :]
        start = self._speech_start
        long_enough = speech_end - start >= self.config.min_speech_ms * self._ms
        if continue_speech:
            # Carry the audio after the cut into a new utterance that starts at the cut.
            self._buffer = [rest] if len(rest) else []
            self._buffer_len = len(rest)
            self._buffer_start = cut
            self._speech_start = cut
            self._last_pause = -1
        else:
            self._in_speech = False
            self._buffer = []
            self._buffer_len = 0
            self._silence = 0
            self._preroll = audio[-self._pad :].copy() if self._pad else np.zeros(0, dtype=np.float32)
        if not long_enough:
            return None
        return Utterance(start=start, end=speech_end, audio=utt_audio)


def last_utterances(endpointer: Endpointer, resampler: StreamResampler | None) -> list[Utterance]:
    """End of a stream: the utterances the resampler's held-back tail closes, then the one still open."""
    closed = endpointer.feed(resampler.flush()) if resampler is not None else []
    last = endpointer.flush()
    return [*closed, last] if last is not None else closed
