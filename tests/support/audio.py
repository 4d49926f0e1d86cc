"""Analysis helpers for recorded WAVs (16-bit PCM), stdlib only: ``wave`` + ``array``.

Levels are dBFS of the 20 ms frame RMS, full scale = 32768 (a full-scale sine reads ≈ -3 dBFS).
Multi-channel files are analysed on their first channel.
"""

from __future__ import annotations

import math
import sys
import wave
from array import array
from pathlib import Path

FRAME_MS = 20
SILENCE_DBFS = -120.0  # what an all-zero frame reports instead of -inf


def read_pcm16(path: str | Path) -> tuple[int, array[int]]:
    """(sample rate, samples of the first channel) of a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM, got {8 * w.getsampwidth()}-bit")
        rate, channels = w.getframerate(), w.getnchannels()
        raw = w.readframes(w.getnframes())
    samples = array("h")
    samples.frombytes(raw[: len(raw) - len(raw) % 2])
    if sys.byteorder == "big":
        samples.byteswap()  # WAV is little-endian
    if channels > 1:
        samples = samples[::channels]
    return rate, samples


def _dbfs(sum_squares: float, n: int) -> float:
    if n == 0 or sum_squares <= 0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20 * math.log10(math.sqrt(sum_squares / n) / 32768))


def frame_levels_dbfs(path: str | Path, frame_ms: int = FRAME_MS) -> list[float]:
    """RMS level of each complete ``frame_ms`` frame, in dBFS."""
    rate, s = read_pcm16(path)
    n = rate * frame_ms // 1000
    return [_dbfs(math.fsum(x * x for x in s[i : i + n]), n) for i in range(0, len(s) - n + 1, n)]


def wav_duration(path: str | Path) -> float:
    """Length in seconds according to the header (0.0 for an unfinished recording)."""
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def rms_dbfs(path: str | Path) -> float:
    """RMS level of the whole file in dBFS."""
    _, s = read_pcm16(path)
    return _dbfs(math.fsum(x * x for x in s), len(s))


def active_speech_seconds(path: str | Path, threshold_dbfs: float = -40.0, frame_ms: int = FRAME_MS) -> float:
    """Total time of frames whose RMS is above ``threshold_dbfs``."""
    return sum(frame_ms for lvl in frame_levels_dbfs(path, frame_ms) if lvl > threshold_dbfs) / 1000


def first_sound_offset(path: str | Path, threshold_dbfs: float = -40.0, frame_ms: int = FRAME_MS) -> float | None:
    """Seconds from the start of the file to the first frame above ``threshold_dbfs`` (None: silent)."""
    for i, lvl in enumerate(frame_levels_dbfs(path, frame_ms)):
        if lvl > threshold_dbfs:
            return i * frame_ms / 1000
    return None


def tone_level_dbfs(path: str | Path, freq: float, start: float = 0.0, seconds: float | None = None) -> float:
    """Level of the ``freq`` component (Goertzel), in dBFS of an equivalent sine's RMS.

    Compare with ``rms_dbfs`` over the same span to check that a recording is that tone.
    """
    rate, s = read_pcm16(path)
    a = int(start * rate)
    b = len(s) if seconds is None else min(len(s), a + int(seconds * rate))
    n = b - a
    if n <= 0:
        return SILENCE_DBFS
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in s[a:b]:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2  # |X(f)|^2 ≈ (A n / 2)^2 for a sine of amplitude A
    amplitude = 2 * math.sqrt(max(power, 0.0)) / n
    return _dbfs((amplitude / math.sqrt(2)) ** 2, 1)


def tone_power_dbfs(path: str | Path, freq: float, start: float = 0.0, window_s: float = 0.1) -> float:
    """Mean power of the ``freq`` component over short windows, in dBFS: unlike one long Goertzel, a tone whose
    phase jumps (a mixer or jitter buffer dropping or inserting a frame) still counts at its full level."""
    rate, s = read_pcm16(path)
    n = int(window_s * rate)
    a = int(start * rate)
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    powers = []
    for i in range(a, len(s) - n + 1, n):
        s1 = s2 = 0.0
        for x in s[i : i + n]:
            s1, s2 = x + coeff * s1 - s2, s1
        amplitude = 2 * math.sqrt(max(s1 * s1 + s2 * s2 - coeff * s1 * s2, 0.0)) / n
        powers.append((amplitude / math.sqrt(2)) ** 2)
    return _dbfs(math.fsum(powers), len(powers)) if powers else SILENCE_DBFS


def make_tone_wav(path: str | Path, freq: float, seconds: float, rate: int = 8000, level_dbfs: float = -10.0) -> Path:
    """Write a mono 16-bit sine of ``freq`` Hz; ``level_dbfs`` is its RMS level."""
    amplitude = 32768 * math.sqrt(2) * 10 ** (level_dbfs / 20)
    if amplitude > 32767:
        raise ValueError("level too high for a sine without clipping (max ≈ -3 dBFS)")
    n = int(seconds * rate)
    samples = array("h", (round(amplitude * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)))
    return write_wav(path, samples, rate)


def make_silence_wav(path: str | Path, seconds: float, rate: int = 8000) -> Path:
    return write_wav(path, array("h", bytes(2 * int(seconds * rate))), rate)


def write_wav(path: str | Path, samples: array[int], rate: int) -> Path:
    """Write mono 16-bit samples as a WAV file."""
    out = Path(path)
    data = array("h", samples)
    if sys.byteorder == "big":
        data.byteswap()
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())
    return out
