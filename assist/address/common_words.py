"""Words of everyday Mandarin: a span the recogniser wrote as one of them is that word, not a place name that only
sounds the same (任何, "any", is not 仁和镇; 曾经, "once", is not a place).

The list is jieba's dictionary (PyPI `jieba`; a word, its frequency and its part of speech a line), read once:
words of two to four characters at least `COMMON_FREQUENCY` times in it, place names (`ns`) left out, since a span
written as a place is not evidence against a place."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

COMMON_FREQUENCY = 200
_LENGTHS = range(2, 5)
_PLACE_TAG = "ns"


@functools.cache
def common_words() -> frozenset[str]:
    """The everyday words (about 19,000 of the dictionary's 349,000; read once per process)."""
    words: set[str] = set()
    text = _dictionary().read_text(encoding="utf-8")
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) < 3 or len(parts[0]) not in _LENGTHS or parts[2] == _PLACE_TAG:
            continue
        if int(parts[1]) >= COMMON_FREQUENCY:
            words.add(parts[0])
    return frozenset(words)


def is_common_word(span: str) -> bool:
    """`span` is one everyday word (not a place name)."""
    return span in common_words()


def _dictionary() -> Path:
    """jieba's dict.txt, found without importing jieba (its package sets up a tokenizer and logging)."""
    spec = importlib.util.find_spec("jieba")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("jieba is not installed: pip install jieba (the everyday-words list)")
    return Path(next(iter(spec.submodule_search_locations))) / "dict.txt"
