"""ASR settings and the engine factory (fast)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from asr.engine import create_engine
from asr.settings import AsrSettings
from asr.vosk_engine import VoskModelMissing
from hotline.settings import load_settings


def test_defaults() -> None:
    settings = AsrSettings()
    assert settings.engine == "faster-whisper" and settings.model == "base" and settings.model_path is None
    assert settings.language == "zh" and settings.initial_prompt == "以下是普通话的句子。"
    assert settings.resolved_compute_type() == "int8"
    assert AsrSettings(device="cuda").resolved_compute_type() == "float16"
    assert settings.vosk_model_dir == Path("var/models/vosk-model-small-cn-0.22")
    vad = settings.vad.config()
    assert (vad.threshold, vad.neg_threshold, vad.min_silence_ms) == (0.4, 0.35, 500)


def test_invalid_values_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"neg_threshold \(0.35\) must be below threshold \(0.3\)"):
        AsrSettings(vad={"threshold": 0.3})
    with pytest.raises(ValidationError, match="extra"):
        AsrSettings(unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="needs model_path"):
        AsrSettings(model="gigantic")
    assert AsrSettings(model="small").model_path is None  # installed under models_dir by `hotline models install`
    with pytest.raises(ValidationError):
        AsrSettings(engine="kaldi")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        AsrSettings(vad={"min_silence_ms": 10})  # type: ignore[arg-type]


def test_gateway_settings_carry_the_asr_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_ASR__VAD__MIN_SILENCE_MS", "700")
    monkeypatch.setenv("HOTLINE_ASR__WORKERS", "2")
    settings = load_settings()
    assert settings.asr.vad.min_silence_ms == 700 and settings.asr.workers == 2
    assert settings.asr.engine == "faster-whisper"


def test_workers_default_to_one_more_than_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    assert load_settings().asr.workers == 7  # config/hotline.yaml: 0, i.e. the cores + 1
    assert AsrSettings(workers=0).workers == 7 and AsrSettings(workers=2).workers == 2
    with pytest.raises(ValidationError):
        AsrSettings(workers=-1)


def test_vosk_without_a_model_says_what_to_do(tmp_path: Path) -> None:
    settings = AsrSettings(engine="vosk", vosk_model_dir=Path("no-such-model"))
    with pytest.raises(VoskModelMissing, match=str(tmp_path / "no-such-model")):
        create_engine(settings, base_dir=tmp_path)
