"""PCM helpers: s16le bytes <-> float32 arrays, WAV reading, band-limited resampling (batch and streaming).

Resampling is windowed-sinc interpolation (Kaiser window) in numpy: good enough for speech recognition, exact
for any rational ratio (8 k -> 16 k, 44.1 k -> 16 k, ...), and the streaming form gives the same samples as
the batch form so that a stream fed in 20 ms frames sees exactly what an offline decode of the whole file
sees.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

ASR_RATE = 16000
_HALF_TAPS = 16  # taps each side of the interpolation point, at the lower of the two rates
_KAISER_BETA = 8.0


def pcm16_to_float(pcm: bytes, *, big_endian: bool = False) -> FloatArray:
    """Signed 16-bit PCM (little-endian unless told) to float32 in [-1, 1)."""
    if len(pcm) % 2:
        raise ValueError(f"16-bit PCM needs an even number of bytes, got {len(pcm)}")
    samples = np.frombuffer(pcm, dtype=">i2" if big_endian else "<i2")
    return (samples.astype(np.float32) / 32768.0).astype(np.float32)


def float_to_pcm16(audio: npt.NDArray[np.floating]) -> bytes:
    """Float audio in [-1, 1] to s16le bytes (clipped)."""
    scaled = np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32768.0), -32768, 32767)
    return scaled.astype("<i2").tobytes()


def read_wav(path: str | Path) -> tuple[FloatArray, int]:
    """A mono or multi-channel 16-bit WAV file as mono float32 and its sample rate (channels are averaged)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported (sample width {wav.getsampwidth()})")
        channels = wav.getnchannels()
        rate = wav.getframerate()
        data = pcm16_to_float(wav.readframes(wav.getnframes()))
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype(np.float32)
    return data, rate


def read_wav_16k(path: str | Path) -> FloatArray:
    """A WAV file as 16 kHz mono float32 (resampled when needed)."""
    audio, rate = read_wav(path)
    return resample(audio, rate, ASR_RATE)


def _kernel(offsets: npt.NDArray[np.float64], cutoff: float, half_width: float) -> npt.NDArray[np.float64]:
    """Windowed-sinc low-pass kernel at `offsets` (input samples); cutoff as a fraction of input Nyquist."""
    ratio = np.clip(offsets / half_width, -1.0, 1.0)
    window = np.i0(_KAISER_BETA * np.sqrt(1.0 - ratio**2)) / np.i0(_KAISER_BETA)
    return np.asarray(cutoff * np.sinc(cutoff * offsets) * window, dtype=np.float64)


class StreamResampler:
    """Streaming resampler: push chunks of any size, get the resampled samples available so far.

    Output sample n lies at input time n * src / dst. The resampler holds back a few input samples of
    look-ahead; `flush()` returns the tail as if the input went on with silence. Weights are precomputed per
    phase (the ratio is rational), so a 20 ms frame costs a gather and a dot product.
    """

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError("sample rates must be positive")
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        g = math.gcd(src_rate, dst_rate)
        self._up = dst_rate // g  # L: output samples per M input samples
        self._down = src_rate // g  # M
        cutoff = min(1.0, dst_rate / src_rate) * 0.95
        self._half = int(np.ceil(_HALF_TAPS / cutoff))  # kernel half-support, in input samples
        self._taps = np.arange(-self._half + 1, self._half + 1, dtype=np.int64)
        phases = np.arange(self._up, dtype=np.float64) / self._up
        self._table = _kernel(phases[:, None] - self._taps[None, :], cutoff, float(self._half)).astype(np.float32)
        self._buf = np.zeros(self._half, dtype=np.float32)  # silence stands for the time before the start
        self._buf_start = -self._half  # input index of _buf[0]
        self._received = 0  # input samples received
        self._next_out = 0  # index of the next output sample

    def _produce(self, limit: int, count: int | None = None) -> FloatArray:
        """Output samples whose kernel lies within input indices < limit (at most `count` of them)."""
        # Output n needs input up to (n*M)//L + half.
        last = ((limit - 1 - self._half) * self._up) // self._down
        while last >= 0 and (last * self._down) // self._up + self._half > limit - 1:
            last -= 1
        if count is not None:
            last = min(last, self._next_out + count - 1)
        if last < self._next_out:
            return np.zeros(0, dtype=np.float32)
        n_out = np.arange(self._next_out, last + 1, dtype=np.int64)
        pos = n_out * self._down
        base = pos // self._up
        phase = pos % self._up
        local = base[:, None] + self._taps[None, :] - self._buf_start
        out: FloatArray = np.einsum("ij,ij->i", self._buf[local], self._table[phase]).astype(np.float32)
        self._next_out = last + 1
        keep_from = (self._next_out * self._down) // self._up - self._half + 1
        drop = max(0, keep_from - self._buf_start)
        if drop:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return out

    def push(self, audio: npt.NDArray[np.floating]) -> FloatArray:
        chunk = np.asarray(audio, dtype=np.float32)
        if self.src_rate == self.dst_rate:
            return chunk.copy()
        self._buf = np.concatenate([self._buf, chunk])
        self._received += len(chunk)
        return self._produce(self._received)

    def flush(self) -> FloatArray:
        """The remaining output for the input received (ceil(n * dst / src) samples in all)."""
        if self.src_rate == self.dst_rate:
            return np.zeros(0, dtype=np.float32)
        total_out = -(-self._received * self._up // self._down)
        self._buf = np.concatenate([self._buf, np.zeros(self._half + 1, dtype=np.float32)])
        return self._produce(self._received + self._half + 1, count=max(0, total_out - self._next_out))


def resample(audio: npt.NDArray[np.floating], src_rate: int, dst_rate: int) -> FloatArray:
    """Band-limited resampling of a whole signal (same samples as StreamResampler fed in any chunking)."""
    data = np.asarray(audio, dtype=np.float32)
    if src_rate == dst_rate:
        return data.copy()
    rs = StreamResampler(src_rate, dst_rate)
    return np.concatenate([rs.push(data), rs.flush()]).astype(np.float32)
