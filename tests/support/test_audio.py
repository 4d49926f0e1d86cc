from __future__ import annotations

from array import array
from pathlib import Path

import pytest

from tests.support import audio


def test_tone_measurements(tmp_path: Path) -> None:
    tone = audio.make_tone_wav(tmp_path / "t.wav", 1000, 2.0, level_dbfs=-12)
    assert audio.wav_duration(tone) == pytest.approx(2.0)
    assert audio.rms_dbfs(tone) == pytest.approx(-12, abs=0.1)
    assert audio.tone_level_dbfs(tone, 1000) == pytest.approx(-12, abs=0.1)
    assert audio.tone_level_dbfs(tone, 1400) < -60
    assert audio.active_speech_seconds(tone) == pytest.approx(2.0)
    assert audio.first_sound_offset(tone) == 0.0


def test_silence_then_sound(tmp_path: Path) -> None:
    rate = 8000
    quiet = array("h", bytes(2 * rate // 2))  # 0.5 s of zeros
    audio.make_tone_wav(tmp_path / "t.wav", 440, 1.0, rate=rate)
    _, loud = audio.read_pcm16(tmp_path / "t.wav")
    path = audio.write_wav(tmp_path / "mix.wav", quiet + loud, rate)
    assert audio.first_sound_offset(path) == pytest.approx(0.5)
    assert audio.active_speech_seconds(path) == pytest.approx(1.0)
    assert audio.active_speech_seconds(path, threshold_dbfs=0) == 0.0
    silent = audio.make_silence_wav(tmp_path / "s.wav", 1.0)
    assert audio.first_sound_offset(silent) is None
    assert audio.rms_dbfs(silent) == audio.SILENCE_DBFS
