"""The telephone path, offline: 16 kHz -> 8 kHz -> G.711 (mu-law or A-law) encode/decode -> 16 kHz.

That is what a caller's SIP client does to speech before it reaches Asterisk (band limit to < 4 kHz, 8-bit
companding), and what Asterisk undoes when it hands slin16 to an ExternalMedia channel. The codecs follow
ITU-T G.711 (the classic Sun reference implementation; byte-identical to the deprecated stdlib `audioop`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from asr.audio import ASR_RATE, FloatArray, resample

Codec = Literal["ulaw", "alaw"]
TELEPHONE_RATE = 8000

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159  # 14-bit
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def _to_int16(audio: npt.NDArray[np.floating]) -> npt.NDArray[np.int32]:
    return np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int32)


def ulaw_encode(samples: npt.NDArray[np.integer]) -> bytes:
    """16-bit linear samples to G.711 mu-law bytes."""
    x = np.asarray(samples, dtype=np.int32) >> 2  # 14-bit, as the reference implementation
    mask = np.where(x < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(x), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(_ULAW_SEG_END, mag, side="left").astype(np.int32)
    uval = (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F)
    uval = np.where(seg >= 8, 0x7F, uval)
    return ((uval ^ mask) & 0xFF).astype(np.uint8).tobytes()


def ulaw_decode(data: bytes) -> npt.NDArray[np.int16]:
    """G.711 mu-law bytes to 16-bit linear samples."""
    u = (~np.frombuffer(data, dtype=np.uint8).astype(np.int32)) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    mag = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(u & 0x80, -mag, mag).astype(np.int16)


def alaw_encode(samples: npt.NDArray[np.integer]) -> bytes:
    """16-bit linear samples to G.711 A-law bytes."""
    x = np.asarray(samples, dtype=np.int32) >> 3
    mask = np.where(x >= 0, 0xD5, 0x55)
    x = np.where(x >= 0, x, -x - 1)
    seg = np.searchsorted(_ALAW_SEG_END, x, side="left").astype(np.int32)
    shift = np.where(seg < 2, 1, seg)
    aval = (np.minimum(seg, 7) << 4) | ((x >> shift) & 0x0F)
    aval = np.where(seg >= 8, 0x7F, aval)
    return ((aval ^ mask) & 0xFF).astype(np.uint8).tobytes()


def alaw_decode(data: bytes) -> npt.NDArray[np.int16]:
    """G.711 A-law bytes to 16-bit linear samples."""
    a = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


def g711_roundtrip(audio_8k: npt.NDArray[np.floating], codec: Codec = "ulaw") -> FloatArray:
    """Encode and decode 8 kHz float audio with G.711 (the quantisation a call applies)."""
    linear = _to_int16(audio_8k)
    if codec == "ulaw":
        decoded = ulaw_decode(ulaw_encode(linear))
    elif codec == "alaw":
        decoded = alaw_decode(alaw_encode(linear))
    else:  # pragma: no cover - guarded by the Literal type
        raise ValueError(f"unknown codec {codec!r}")
    return (decoded.astype(np.float32) / 32768.0).astype(np.float32)


def telephone_path(audio: npt.NDArray[np.floating], rate: int = ASR_RATE, codec: Codec = "ulaw") -> FloatArray:
    """Simulate a phone call's audio path: `rate` -> 8 kHz -> G.711 -> 16 kHz (float32 out, same duration)."""
    narrow = resample(audio, rate, TELEPHONE_RATE)
    return resample(g711_roundtrip(narrow, codec), TELEPHONE_RATE, ASR_RATE)
