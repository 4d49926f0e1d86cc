"""Where the project lives: relative paths in every package's settings are relative to the project root (where
``var/`` and ``node_modules/`` are)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
DEFAULT_CONFIG_FILE = PACKAGE_DIR / "hotline.yaml"


def resolve(path: Path) -> Path:
    return path if path.is_absolute() else PROJECT_ROOT / path


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (secrets, passwords), atomically: it is created 0600 (mkstemp), so it is
    never readable by others, even briefly, and a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
