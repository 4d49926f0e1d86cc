"""G.711 codecs and the simulated telephone path (fast)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from asr.audio import resample
from asr.telephone import alaw_decode, alaw_encode, g711_roundtrip, telephone_path, ulaw_decode, ulaw_encode

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the stdlib reference (deprecated, removed in 3.13): only to check ours against


ALL_16BIT = np.arange(-32768, 32768, dtype=np.int32)
ALL_BYTES = bytes(range(256))


def test_ulaw_matches_the_reference_codec_bit_for_bit() -> None:
    pcm = ALL_16BIT.astype("<i2").tobytes()
    assert ulaw_encode(ALL_16BIT) == audioop.lin2ulaw(pcm, 2)
    assert ulaw_decode(ALL_BYTES).astype("<i2").tobytes() == audioop.ulaw2lin(ALL_BYTES, 2)


def test_alaw_matches_the_reference_codec_bit_for_bit() -> None:
    pcm = ALL_16BIT.astype("<i2").tobytes()
    assert alaw_encode(ALL_16BIT) == audioop.lin2alaw(pcm, 2)
    assert alaw_decode(ALL_BYTES).astype("<i2").tobytes() == audioop.alaw2lin(ALL_BYTES, 2)


@pytest.mark.parametrize("codec", ["ulaw", "alaw"])
def test_g711_quantisation_keeps_speech_level_signals(codec: str) -> None:
    t = np.arange(8000) / 8000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = g711_roundtrip(tone, codec)  # type: ignore[arg-type]
    snr = 10 * np.log10(np.sum(tone**2) / np.sum((out - tone) ** 2))
    assert 30 < snr < 45  # 8-bit companding: ~38 dB, never lossless


def test_telephone_path_band_limits_and_keeps_length() -> None:
    rate = 16000
    t = np.arange(rate) / rate
    low = 0.3 * np.sin(2 * np.pi * 1000 * t)
    high = 0.3 * np.sin(2 * np.pi * 6000 * t)  # above the 4 kHz telephone band
    out_low = telephone_path(low.astype(np.float32))
    out_high = telephone_path(high.astype(np.float32))
    assert len(out_low) == rate and out_low.dtype == np.float32
    mid = slice(400, -400)
    assert np.sqrt(np.mean(out_low[mid] ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)
    assert np.sqrt(np.mean(out_high[mid] ** 2)) < 0.005  # removed by the 8 kHz hop


def test_telephone_path_from_other_rates() -> None:
    audio = np.zeros(44100, np.float32)
    assert len(telephone_path(audio, rate=44100)) == 16000
    assert len(resample(audio, 44100, 8000)) == 8000
