"""The surface forms the extractor looks for: every name and alias of the gazetteer, with what each one means."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

import ahocorasick  # type: ignore[import-not-found]

from assist.address.gazetteer import Gazetteer
from assist.address.phonetic import PhoneticIndex
from events.address import Level, MatchKind

# Match quality by kind of surface (before length, ambiguity and context adjustments).
KIND_QUALITY: dict[str, float] = {
    "name": 1.0,
    "nbs": 0.95,
    "variant": 0.9,
    "stem": 0.85,
    "colloquial": 0.8,
}
SECONDARY_COLLOQUIAL = 0.7  # a town that shares a colloquial area, not its main one
NBS_ONLY_TOWN = 0.9  # development zones that the current (MCA) list no longer has
# A community named only by its number (第四社区, 七区社区) is the fourth of whichever street the caller meant: it
# counts only with its street or district named, like an ordinary word.
ORDINAL_ONLY = re.compile(r"^第?[一二三四五六七八九十]+区?(社区|村)$")


@dataclass(frozen=True, slots=True)
class LexEntry:
    level: Level
    code: str
    kind: MatchKind
    weak: bool  # may be an ordinary word (东风, 和谐家园): counts only with its parent named or a place word
    quality: float


class Lexicon:
    """Surface → entries, an Aho-Corasick automaton over all surfaces, and pinyin indexes."""

    def __init__(self, gazetteer: Gazetteer, phonetic_threshold: float = 0.75) -> None:
        self.gazetteer = gazetteer
        self.phonetic_threshold = phonetic_threshold
        entries: dict[str, list[LexEntry]] = defaultdict(list)

        def add(surface: str, entry: LexEntry) -> None:
            if len(surface) >= 2 and entry not in entries[surface]:
                entries[surface].append(entry)

        for d in gazetteer.districts.values():
            add(d.name, LexEntry("district", d.code, "name", False, 1.0))
            add(d.short, LexEntry("district", d.code, "stem", False, KIND_QUALITY["stem"]))
        phonetic_surfaces: list[str] = []
        for d in gazetteer.districts.values():
            phonetic_surfaces += [d.name, d.short]
        for t in gazetteer.towns.values():
            factor = 1.0 if t.current else NBS_ONLY_TOWN
            add(t.name, LexEntry("town", t.code, "name", False, factor))
            phonetic_surfaces.append(t.name)
            if t.name.endswith("街道"):
                short = t.name[:-1]  # 中关村街: callers and ASR drop the 道
                add(short, LexEntry("town", t.code, "variant", False, KIND_QUALITY["variant"] * factor))
                phonetic_surfaces.append(short)
            for alias, kind in t.aliases:
                weak = kind == "stem" and len(alias) <= 2
                quality = KIND_QUALITY.get(kind, 0.85) * factor
                add(alias, LexEntry("town", t.code, kind, weak, quality))  # type: ignore[arg-type]
                if kind in ("stem", "nbs"):
                    phonetic_surfaces.append(alias)
        for c in gazetteer.colloquial:
            for rank, code in enumerate(c.town_codes):
                quality = KIND_QUALITY["colloquial"] * (1.0 if rank == 0 else SECONDARY_COLLOQUIAL)
                add(c.name.upper(), LexEntry("town", code, "colloquial", False, quality))
            phonetic_surfaces.append(c.name)
        for m in gazetteer.communities.values():
            weak = len(m.name) <= 2 or ORDINAL_ONLY.match(m.name) is not None
            add(m.name, LexEntry("community", m.code, "name", weak, 1.0))
            for alias in m.aliases:
                # A bare community name (和谐家园, 西单商场) is often an ordinary phrase: always weak.
                add(alias, LexEntry("community", m.code, "stem", True, KIND_QUALITY["stem"]))
        self.entries: dict[str, list[LexEntry]] = dict(entries)
        self.automaton = ahocorasick.Automaton()
        for surface in self.entries:
            self.automaton.add_word(surface, surface)
        self.automaton.make_automaton()
        self.phonetic = PhoneticIndex(phonetic_surfaces, phonetic_threshold)
        self._community_indexes: dict[str, PhoneticIndex] = {}

    def phonetic_entries(self, surface: str) -> list[LexEntry]:
        """Entries of a phonetically matched surface (district, town and colloquial surfaces only)."""
        return [e for e in self.entries.get(surface, []) if e.level != "community"]

    def community_index(self, town_code: str) -> PhoneticIndex:
        """A small pinyin index of one town's communities, built when that town is named."""
        index = self._community_indexes.get(town_code)
        if index is None:
            surfaces: list[str] = []
            for code in self.gazetteer.communities_by_town.get(town_code, []):
                community = self.gazetteer.communities[code]
                surfaces.append(community.name)
                surfaces.extend(community.aliases)
            index = self._community_indexes[town_code] = PhoneticIndex(surfaces, self.phonetic_threshold)
        return index

    def iter_exact(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, surface) of every occurrence of every surface in the text."""
        out: list[tuple[int, int, str]] = []
        for end_index, surface in self.automaton.iter(text):
            out.append((end_index - len(surface) + 1, end_index + 1, surface))
        return out
