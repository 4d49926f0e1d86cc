"""The Mandarin test speech in `<repo>/../shared/speech-zh` (override: HOTLINE_SPEECH_DIR): sets of clips with
reference transcripts (`trans.tsv`: file<TAB>text), for tests and bench/asr_eval.py."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from asr.audio import FloatArray, read_wav_16k

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SETS = (
    "thchs30-d4",
    "wenet-test",
    "fireredasr-examples",
    "speechcolab-mini-zh",
    "sherpa-docs-zh",
    "sherpa-docs-sichuanese-dialect",
)


def speech_dir() -> Path:
    override = os.environ.get("HOTLINE_SPEECH_DIR")
    return Path(override) if override else PROJECT_ROOT.parent / "shared" / "speech-zh"


@dataclass(frozen=True)
class Clip:
    set_name: str
    name: str
    path: Path
    reference: str

    def audio(self) -> FloatArray:
        """16 kHz mono float32 (resampled if the file is 44.1 or 48 kHz)."""
        return read_wav_16k(self.path)


def load_set(name: str, root: Path | None = None) -> list[Clip]:
    folder = (root or speech_dir()) / name
    clips = []
    with (folder / "trans.tsv").open(encoding="utf-8") as table:
        for line in table:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            file_name, _, reference = line.partition("\t")
            clips.append(Clip(name, file_name, folder / file_name, reference.strip()))
    return clips


def available_sets(root: Path | None = None) -> list[str]:
    base = root or speech_dir()
    return [name for name in SETS if (base / name / "trans.tsv").is_file()]
