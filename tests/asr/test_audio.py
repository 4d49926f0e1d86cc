"""PCM conversion and resampling (fast)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from asr.audio import StreamResampler, float_to_pcm16, pcm16_to_float, read_wav, read_wav_16k, resample


def test_pcm_roundtrip_and_endianness() -> None:
    samples = np.array([0, 1, -1, 32767, -32768], dtype="<i2")
    audio = pcm16_to_float(samples.tobytes())
    assert audio.dtype == np.float32
    assert float_to_pcm16(audio) == samples.tobytes()
    big = samples.astype(">i2").tobytes()  # what Asterisk's slin16 ExternalMedia sends
    assert np.array_equal(pcm16_to_float(big, big_endian=True), audio)
    with pytest.raises(ValueError, match="even number"):
        pcm16_to_float(b"\x00")


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000), (44100, 16000), (48000, 16000)])
def test_resample_is_accurate_and_streaming_equals_batch(src: int, dst: int) -> None:
    t = np.arange(src) / src
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = resample(tone, src, dst)
    assert len(out) == dst
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(dst) / dst)
    assert np.max(np.abs(out - expected)[100:-100]) < 1e-3
    stream = StreamResampler(src, dst)
    pieces = [stream.push(tone[i : i + 160]) for i in range(0, len(tone), 160)]  # 20 ms frames at 8 kHz
    pieces.append(stream.flush())
    assert np.array_equal(np.concatenate(pieces), out)


def test_downsampling_removes_aliases() -> None:
    t = np.arange(16000) / 16000
    tone = np.sin(2 * np.pi * 5000 * t).astype(np.float32)  # above 4 kHz: must not fold back to 3 kHz
    out = resample(tone, 16000, 8000)
    assert np.sqrt(np.mean(out[200:-200] ** 2)) < 0.01


def test_read_wav_mixes_channels_and_resamples(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    left = (np.sin(np.arange(4800) / 10) * 10000).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(48000)
        wav.writeframes(np.stack([left, left], axis=1).tobytes())
    audio, rate = read_wav(path)
    assert rate == 48000 and len(audio) == 4800
    assert len(read_wav_16k(path)) == 1600
