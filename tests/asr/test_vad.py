"""Silero VAD streaming and the endpointer, on real speech (fast: ~0.1 ms per 32 ms chunk)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr.audio import ASR_RATE
from asr.vad import CHUNK, Endpointer, SileroVad, Utterance, VadConfig, silero_model_path
from tests.asr.support import with_silence
from tools.asr_eval.corpus import load_set

GAP_S, LEAD_S = 1.5, 0.5


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad()


@pytest.fixture(scope="module")
def joined(speech_root: Path) -> tuple[np.ndarray, list[tuple[int, int]]]:
    clips = [c.audio() for c in load_set("thchs30-d4", speech_root) + load_set("wenet-test", speech_root)]
    bounds, pos = [], int(LEAD_S * ASR_RATE)
    for clip in clips:
        bounds.append((pos, pos + len(clip)))
        pos += len(clip) + int(GAP_S * ASR_RATE)
    return with_silence(clips, gap_s=GAP_S, lead_s=LEAD_S), bounds


def _segment(vad: SileroVad, audio: np.ndarray, config: VadConfig, frame: int = 320) -> list[Utterance]:
    endpointer = Endpointer(vad.new_state(), config)
    out: list[Utterance] = []
    for i in range(0, len(audio), frame):  # 20 ms frames, as a media tap delivers them
        out += endpointer.feed(audio[i : i + frame])
    last = endpointer.flush()
    return out + ([last] if last else [])


def test_streaming_probabilities_equal_the_offline_model(vad: SileroVad, joined: tuple) -> None:
    from faster_whisper.vad import SileroVADModel

    audio = joined[0][: 20 * ASR_RATE]
    audio = audio[: len(audio) // CHUNK * CHUNK]
    offline = SileroVADModel(str(silero_model_path()))(audio).reshape(-1)
    state = vad.new_state()
    chunks = audio.reshape(-1, CHUNK)
    streamed = np.concatenate([state.probabilities(chunks[i : i + 3]) for i in range(0, len(chunks), 3)])
    assert np.allclose(streamed, offline, atol=1e-5)


def test_endpoints_fall_in_the_pauses(vad: SileroVad, joined: tuple) -> None:
    audio, bounds = joined
    utterances = _segment(vad, audio, VadConfig())
    tolerance = int(0.3 * ASR_RATE)
    assert len(utterances) >= len(bounds)
    for clip_start, clip_end in bounds:
        inside = [u for u in utterances if clip_start - tolerance <= u.start and u.end <= clip_end + tolerance]
        assert inside, f"no utterance inside clip {clip_start / ASR_RATE:.2f}-{clip_end / ASR_RATE:.2f} s"
    for u in utterances:  # no utterance spans the silence between two clips
        assert any(s - tolerance <= u.start and u.end <= e + tolerance for s, e in bounds)
        pad = VadConfig().speech_pad_ms * ASR_RATE // 1000
        assert len(u.audio) <= u.end - u.start + 2 * pad + CHUNK


def test_long_speech_is_cut_at_max_utterance(vad: SileroVad, joined: tuple) -> None:
    audio, _ = joined
    utterances = _segment(vad, audio, VadConfig(max_utterance_s=3.0))
    assert max(u.end - u.start for u in utterances) <= 3 * ASR_RATE + CHUNK
    assert len(utterances) > len(_segment(vad, audio, VadConfig()))


def test_flush_mid_utterance_returns_what_was_said(vad: SileroVad, joined: tuple) -> None:
    audio, bounds = joined
    start, end = bounds[0]
    cut = start + (end - start) // 2
    endpointer = Endpointer(vad.new_state(), VadConfig(min_silence_ms=2000))
    closed = endpointer.feed(audio[:cut])
    assert endpointer.in_speech
    last = endpointer.flush()
    assert last is not None
    # It ends where speech was last heard (the cut may fall in a short pause of less than min_silence_ms).
    assert cut - 2 * ASR_RATE <= last.end <= cut + CHUNK
    assert last.end - last.start > ASR_RATE
    assert all(u.end <= last.start for u in closed)
    assert endpointer.flush() is None  # nothing left


def test_the_utterance_seen_closing_is_the_one_that_closes(vad: SileroVad, joined: tuple) -> None:
    """What an early decode takes once the silence passed the pad is exactly the audio of the final."""
    audio, _ = joined
    config = VadConfig()
    endpointer = Endpointer(vad.new_state(), config)
    seen: list[Utterance] = []
    closed: list[Utterance] = []
    for i in range(0, 20 * ASR_RATE, 320):
        closed += endpointer.feed(audio[i : i + 320])
        if endpointer.silence_samples() >= config.speech_pad_ms * ASR_RATE // 1000:
            snapshot = endpointer.closing_utterance()
            if snapshot is not None and (not seen or (seen[-1].start, seen[-1].end) != (snapshot.start, snapshot.end)):
                seen.append(snapshot)
    assert len(closed) >= 2
    for final in closed:
        early = [s for s in seen if (s.start, s.end) == (final.start, final.end)]
        assert early, f"no early view of the utterance {final.start}-{final.end}"
        assert np.array_equal(early[-1].audio, final.audio)
