"""Where the project lives: relative paths in every package's settings are relative to the project root (where
``var/`` and ``node_modules/`` are)."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
DEFAULT_CONFIG_FILE = PACKAGE_DIR / "hotline.yaml"


def resolve(path: Path) -> Path:
    return path if path.is_absolute() else PROJECT_ROOT / path
