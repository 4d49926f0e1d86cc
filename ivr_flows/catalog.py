"""Where prompt audio lives: name + language → file. The validator and the runtime only see `PromptCatalog`."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

# Formats Asterisk plays from a `sound:` URI without an extension (it picks the file by extension itself).
AUDIO_EXTENSIONS = (".wav", ".sln16", ".sln", ".ulaw", ".alaw", ".gsm", ".g722")


class PromptCatalog(Protocol):
    def path(self, name: str, language: str) -> Path | None:
        """The audio file of prompt `name` in `language`, or None when there is none."""
        ...


class PromptSequences(Protocol):
    """Composite announcements ("there are N callers ahead of you") as prompt names per language and count."""

    def sequence(self, name: str, lang: str, n: int) -> list[str]:
        """Prompt names (all in `lang`) saying sequence `name` with count `n`; KeyError if `lang` has none."""
        ...


def load_sequences(texts: Path | None = None) -> PromptSequences | None:
    """The sequences of the prompt texts file (ivr_flows/prompt_texts.yaml), or None when it cannot be read."""
    from ivr_flows import prompt_texts

    try:
        return prompt_texts.load_catalog(texts or prompt_texts.DEFAULT_TEXTS)
    except prompt_texts.PromptError:
        return None


def media_uri(path: Path) -> str:
    """`sound:` URI Asterisk understands: absolute path without the extension."""
    return f"sound:{path.resolve().with_suffix('')}"


class FolderPromptCatalog:
    """Prompts laid out as `<root>/<language>/<name>.<ext>` (ivr_flows/prompts/ by default), and the sequences
    of the prompt texts file `texts` (the queue announcements), so it serves as both `PromptCatalog` and
    `PromptSequences`.

    Look-ups are cached because every prompt of every call goes through here; `reload()` forgets the cache and
    re-reads the texts (the registry calls it whenever a flow version changes, and validation always starts from
    a fresh look).
    """

    def __init__(self, root: Path, texts: Path | None = None) -> None:
        self.root = root
        self.texts = texts
        self._cache: dict[tuple[str, str], Path | None] = {}
        self._lock = threading.Lock()
        self._sequences = load_sequences(texts) if texts is not None else None

    @property
    def has_sequences(self) -> bool:
        return self._sequences is not None

    def sequence(self, name: str, lang: str, n: int) -> list[str]:
        if self._sequences is None:
            raise KeyError(name)
        return self._sequences.sequence(name, lang, n)

    def path(self, name: str, language: str) -> Path | None:
        key = (name, language)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        found = self._find(name, language)
        with self._lock:
            self._cache[key] = found
        return found

    def _find(self, name: str, language: str) -> Path | None:
        if "/" in name or "/" in language or name.startswith("."):
            return None
        folder = self.root / language
        for extension in AUDIO_EXTENSIONS:
            candidate = folder / f"{name}{extension}"
            if candidate.is_file():
                return candidate.resolve()
        return None

    def reload(self) -> None:
        with self._lock:
            self._cache.clear()
        if self.texts is not None:
            self._sequences = load_sequences(self.texts)


class StaticPromptCatalog:
    """A fixed set of (name, language) pairs; for tests and for structure-only validation."""

    def __init__(self, entries: Iterable[tuple[str, str]], root: Path = Path("/prompts")) -> None:
        self.root = root
        self.entries = set(entries)

    def path(self, name: str, language: str) -> Path | None:
        if (name, language) in self.entries:
            return self.root / language / f"{name}.wav"
        return None


class AnyPromptCatalog:
    """Every prompt exists: validates a flow's structure without checking audio."""

    def __init__(self, root: Path = Path("/prompts")) -> None:
        self.root = root

    def path(self, name: str, language: str) -> Path | None:
        return self.root / language / f"{name}.wav"
