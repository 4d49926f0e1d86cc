"""A place name found in a line of the transcript: where, which gazetteer entries it may be, how it was found,
and what that is worth."""

from __future__ import annotations

from dataclasses import dataclass, field

from assist.address.lexicon import LexEntry
from events.address import Level, TextSource

PHONETIC_FACTOR = 0.8  # a pinyin match is worth less than the same name written right
WEAK_FACTOR = 0.75  # a short bare name that needed its context
SOURCE_FACTOR: dict[str, float] = {"final": 1.0, "partial": 0.95, "context": 0.9}


@dataclass
class Found:
    """A place name found in a line: its span, the gazetteer entries it may be, and how it was found."""

    start: int
    end: int
    text: str
    source: TextSource
    entries: list[LexEntry]
    score: float = 1.0  # phonetic similarity (1.0 for exact characters)
    phonetic: bool = False
    needs_hierarchy: bool = False  # a place word nearby is not enough: a parent or child must be named
    # Communities elsewhere whose longer name this one ends, with the line holding a name's character right before
    # it (对土门村: 北土门村 and 南土门村 are as likely as 土门村, its first syllable misheard).
    clipped: int = 0

    def overlaps(self, start: int, end: int) -> bool:
        return self.start < end and start < self.end

    def quality(self, entry: LexEntry) -> float:
        length = min(1.0, 0.75 + 0.08 * (self.end - self.start))
        q = entry.quality * length * SOURCE_FACTOR[self.source]
        if self.phonetic:
            q *= self.score * PHONETIC_FACTOR
        if entry.weak:
            q *= WEAK_FACTOR
        return q


@dataclass
class Text:
    """A line being read (the final, the partial after it, or an earlier final as context), normalised, and the
    names chosen in it so far."""

    source: TextSource
    raw: str
    norm: str
    chosen: list[Found] = field(default_factory=list)

    def free(self, start: int, end: int) -> bool:
        return not any(f.overlaps(start, end) for f in self.chosen)


def codes_named(texts: list[Text], level: Level) -> set[str]:
    """The codes of the places of `level` found so far in any of the lines."""
    return {e.code for t in texts for f in t.chosen for e in f.entries if e.level == level}
