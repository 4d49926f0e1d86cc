"""Address extraction from a caller's transcript segment: mentions → hierarchical candidates → ranked, checked.

1. Mentions: every gazetteer name and alias found by an Aho-Corasick automaton (longest spans win); pinyin
   matches of district/street names where the characters did not match (ASR slips: strong only when the stem
   sounds the same and the division suffix is written right, 沙和镇); then, repeatedly, the weak ones — bare
   names that are also ordinary words (东风, 光明, 和谐家园) and the other sound-alikes — where the context
   supports them: the parent or child named (also by another weak mention right next to it: 海边区 + 中官分界),
   or, for exact bare names and same-sounding ones, a place word (那边, 附近, 小区 …); finally the sound-alikes
   the context narrows the names to (sound_alikes.py: loose districts, streets and communities, pinyin matches of
   the named streets' communities). Second readings of a final are judged in second_reading.py.
2. Candidates: each named community, street/town or district with its parents filled in; an ambiguous name
   (八里庄街道 is in 朝阳 and 海淀) keeps the readings consistent with the other levels named; a community (or
   street) that is not in the street (or district) the caller named is still a candidate, with a conflict.
3. Confidence: quality of the deepest match (exact name > official alias > bare stem > colloquial > phonetic;
   shorter and weaker lower), divided by ambiguity, plus agreement of each named parent level, minus conflicts.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from assist.address.calibration import SURE, shown_confidence
from assist.address.found import Found, Text, codes_named
from assist.address.gazetteer import Gazetteer
from assist.address.geometry import BBox
from assist.address.heard_text import (
    division_suffix,
    has_place_word,
    names_a_thing,
    normalize,
    sounds_like,
)
from assist.address.lexicon import LexEntry, Lexicon
from assist.address.phonetic import FUNCTION_CHARS, FUZZY, PhoneticHit, is_han, strongest_first
from assist.address.settings import AddressSettings
from assist.address.sound_alikes import SoundAlikes
from events.address import (
    AddressCandidate,
    AddressCandidates,
    Conflict,
    Level,
    Mention,
    TextSpan,
)

COMMA = "\uff0c"  # the full-width comma of Chinese text
DEPTH: dict[str, int] = {"district": 0, "town": 1, "community": 2}
BASE_WEIGHT = 0.85
AGREEMENT_BONUS = 0.07
CONFLICT_PENALTY = 0.3
# One line naming two districts outright is a slip or the recogniser reciting its prompt's district names over speech
# it could not follow (平谷区山东区、区、密云区、山东区、密云区): whichever card it gives is not sure (shown 71 %).
RIVAL_DISTRICTS = 0.6
# A community named with neither its street nor its district: many names recur in other forms (第四社区, 土门村
# for 北土门村), so the card is not shown as sure (measured on the address speech set's dev lines).
LONE_COMMUNITY_FACTOR = 0.9
MAX_CLIPPED = 2  # characters a community's name may have lost at its start (对土门村 for 北土门村)
LINES_KEPT = 1024  # lines read lately (each with its context), for their second readings: a few hundred calls' worth


@dataclass
class _Named:
    quality: float
    found: Found
    entry: LexEntry


class AddressExtractor:
    """Finds and ranks Beijing addresses in transcript text. Build once (≈0.3 s: the loose matchers of every
    district and street are made up front), share, call per segment."""

    def __init__(self, gazetteer: Gazetteer, settings: AddressSettings | None = None) -> None:
        self.settings = settings or AddressSettings()
        self.gazetteer = gazetteer
        self.lexicon = Lexicon(gazetteer, self.settings.phonetic_threshold)
        self.sound_alikes = SoundAlikes(gazetteer, self.lexicon)
        # Thread-safe: the recogniser's decode threads read lines too (asr hints), beside the map assistant.
        self._read_line = functools.lru_cache(maxsize=LINES_KEPT)(self._extract)
        self._longer_communities = _longer_names(
            [name for c in gazetteer.communities.values() for name in (c.name, *c.aliases) if len(name) >= 3]
        )

    # ---- public -------------------------------------------------------------------------------------------

    def extract(
        self,
        text: str,
        segment_id: str = "",
        *,
        partial: str | None = None,
        context: Sequence[str] = (),
    ) -> AddressCandidates:
        """Candidates for a final segment; `partial` (the running partial after it) and `context` (earlier
        final segments of the same caller) only help complete and check the hierarchy. The same line is read
        again for each second reading of it (second_reading.SecondReadings), so recent results are kept: what this
        returns is shared, to be copied (model_copy), never changed in place."""
        lines = tuple(context)
        # A line still being spoken is read once: its readings would crowd out the finals'.
        found = self._extract(text, lines, partial) if partial else self._read_line(text, lines)
        return found.model_copy(update={"segment_id": segment_id}) if segment_id else found

    def _extract(self, text: str, context: tuple[str, ...], partial: str | None = None) -> AddressCandidates:
        texts = [Text("final", text, normalize(text))]
        if partial:
            texts.append(Text("partial", partial, normalize(partial)))
        texts += [Text("context", c, normalize(c)) for c in context if c]
        weak_pool: list[tuple[Text, Found]] = []
        for t in texts:
            weak_pool += self._strong_mentions(t)
        self._add_weak(texts, weak_pool)
        if self.settings.phonetic:
            self.sound_alikes.add(texts)
        found = [f for t in texts for f in t.chosen]
        candidates = [_over_heard_suffixes(c, text) for c in self._candidates(found)]
        conflicts: list[Conflict] = []
        for candidate in candidates:
            for conflict in candidate.conflicts:
                if conflict not in conflicts:
                    conflicts.append(conflict)
        span = None
        if candidates:
            finals = [m for m in candidates[0].mentions if m.source == "final"]
            if finals:
                start, end = min(m.start for m in finals), max(m.end for m in finals)
                span = TextSpan(start=start, end=end, text=text[start:end])
        return AddressCandidates(segment_id="", text=text, span=span, candidates=candidates, conflicts=conflicts)

    @staticmethod
    def unsure_street_by_sound(card: AddressCandidate) -> bool:
        """A street/town card below SURE whose every name was a sound-alike in the final itself (nothing written
        right, no context): worth a second, guided decode, which may confirm it."""
        return (
            card.level == "town"
            and card.confidence < SURE
            and bool(card.mentions)
            and all(m.kind == "phonetic" and m.source == "final" for m in card.mentions)
        )

    # ---- mentions -----------------------------------------------------------------------------------------

    def _strong_mentions(self, t: Text) -> list[tuple[Text, Found]]:
        """Select non-overlapping strong exact matches (longest first), then strong phonetic ones; return the
        weak exact and phonetic matches for the context check."""
        weak: list[tuple[Text, Found]] = []
        exact = sorted(self.lexicon.iter_exact(t.norm), key=lambda m: (m[0] - m[1], m[0]))
        for start, end, surface in exact:
            if names_a_thing(t.norm, surface, end):
                continue
            entries = self.lexicon.entries[surface]
            strong_entries = [e for e in entries if not e.weak]
            weak_entries = [e for e in entries if e.weak]
            if strong_entries and t.free(start, end):
                found = Found(start, end, t.raw[start:end], t.source, strong_entries)
                if any(e.level == "community" for e in strong_entries):
                    found.clipped = self._clipped(t.norm, start, surface)
                t.chosen.append(found)
            if weak_entries:
                weak.append((t, Found(start, end, t.raw[start:end], t.source, weak_entries)))
        if self.settings.phonetic:
            hits = self.lexicon.phonetic.match(t.norm)
            for hit in sorted(hits, key=strongest_first):
                judged = self._judge_phonetic(hit, t)
                if judged is None:
                    continue
                candidate, strong = judged
                if strong and _heard_over(hit, t):
                    t.chosen = [f for f in t.chosen if not f.overlaps(hit.start, hit.end)]
                if strong and t.free(hit.start, hit.end):
                    t.chosen.append(candidate)
                elif not strong:
                    weak.append((t, candidate))  # a sound-alike counts where the context says "a place"
        return weak

    def _clipped(self, norm: str, start: int, surface: str) -> int:
        """How many longer community names end with `surface` and begin with as many characters as the line has
        right before it (characters of a name: not punctuation, not 是, 在, 我 ...)."""
        before = 0
        while before < MAX_CLIPPED and start - before > 0:
            ch = norm[start - before - 1]
            if not is_han(ch) or ch in FUNCTION_CHARS:
                break
            before += 1
        return sum(self._longer_communities.get((surface, k), 0) for k in range(1, before + 1))

    def _judge_phonetic(self, hit: PhoneticHit, t: Text) -> tuple[Found, bool] | None:
        """A district/street sound-alike → (mention, strong?), or None when it is too loose to use.

        The division suffix (区, 街道, 镇, 乡, 地区) says little: the stem must carry the match. A stem of two
        syllables must sound the same (往经 = 望京), except for the 16 districts, where one near syllable
        is allowed (海边区 ≈ 海淀区). Strong: the stem sounds the same and the suffix is written right (沙和镇);
        everything else needs support from the context (a place word, or the place's parent or child named).
        """
        entries = self.lexicon.phonetic_entries(hit.surface)
        if not entries or names_a_thing(t.norm, hit.surface, hit.end):
            return None
        suffix = division_suffix(hit.surface)
        stem_len = len(hit.surface) - len(suffix)
        stem_sims = hit.sims[:stem_len] if hit.sims else ()
        stem_sure = bool(stem_sims) and min(stem_sims) >= FUZZY
        suffix_written = bool(suffix) and t.norm[hit.end - len(suffix) : hit.end] == suffix
        if stem_len <= 2 and not stem_sure:
            entries = [e for e in entries if e.level == "district"]
            if not entries or not suffix_written:
                return None
        short = hit.end - hit.start <= 2
        if short:
            if not any(a == b for a, b in zip(t.norm[hit.start : hit.end], hit.surface, strict=True)):
                return None  # two syllables and no character right: 语法 is not 榆垡
            entries = [LexEntry(e.level, e.code, e.kind, True, e.quality) for e in entries]
        found = Found(hit.start, hit.end, t.raw[hit.start : hit.end], t.source, entries, hit.score, phonetic=True)
        found.needs_hierarchy = hit.near > 0
        strong = stem_sure and suffix_written and stem_len >= 2 and not short
        return found, strong

    def _add_weak(self, texts: list[Text], pool: list[tuple[Text, Found]]) -> None:
        """Accept pooled mentions that the context supports, repeatedly: one accepted (中官分界 next to 那边)
        can support another (海边区, the district of 中关村街道)."""
        pending = sorted(pool, key=lambda p: (p[1].start - p[1].end, p[1].phonetic))
        changed = True
        while changed and pending:
            changed = False
            districts = codes_named(texts, "district")
            towns = codes_named(texts, "town")
            for item in list(pending):
                t, f = item
                if not t.free(f.start, f.end):
                    pending.remove(item)
                    continue
                neighbours = [
                    e
                    for other_t, other in pending
                    if other_t is t
                    and other is not f
                    and not other.overlaps(f.start, f.end)
                    and (0 <= other.start - f.end <= 1 or 0 <= f.start - other.end <= 1)
                    for e in other.entries
                ]
                kept = self._supported(f, t, districts, towns, neighbours)
                if kept:
                    f.entries = kept
                    t.chosen.append(f)
                    pending.remove(item)
                    changed = True

    def _supported(
        self, f: Found, t: Text, districts: set[str], towns: set[str], neighbours: list[LexEntry]
    ) -> list[LexEntry]:
        g = self.gazetteer
        place_word = has_place_word(t.norm, f.start, f.end) and not f.needs_hierarchy
        near_districts = {self._district_of(e) for e in neighbours}
        near_towns = {self._town_of(e) for e in neighbours} - {None}
        kept: list[LexEntry] = []
        for e in f.entries:
            if e.level == "town":
                district = g.towns[e.code].district_code
                by_neighbour = district in near_districts and any(n.level == "district" for n in neighbours)
                if district in districts or place_word or by_neighbour or e.code in near_towns:
                    kept.append(e)
            elif e.level == "community":
                town = g.communities[e.code].town_code
                district = g.towns[town].district_code
                named_parent = town in towns or town in near_towns
                long_exact = f.end - f.start >= 3 and not f.phonetic
                if named_parent or (long_exact and (place_word or district in districts)):
                    kept.append(e)
            elif e.level == "district" and (
                place_word or any(g.towns[c].district_code == e.code for c in towns) or e.code in near_districts
            ):
                kept.append(e)
        return kept

    def _district_of(self, e: LexEntry) -> str:
        g = self.gazetteer
        if e.level == "district":
            return e.code
        if e.level == "town":
            return g.towns[e.code].district_code
        return g.towns[g.communities[e.code].town_code].district_code

    def _town_of(self, e: LexEntry) -> str | None:
        if e.level == "town":
            return e.code
        if e.level == "community":
            return self.gazetteer.communities[e.code].town_code
        return None

    # ---- candidates ---------------------------------------------------------------------------------------

    def _candidates(self, found: list[Found]) -> list[AddressCandidate]:
        g = self.gazetteer
        named: dict[Level, dict[str, _Named]] = {"district": {}, "town": {}, "community": {}}
        for f in found:
            for e in f.entries:
                q = f.quality(e)
                best = named[e.level].get(e.code)
                if best is None or q > best.quality:
                    named[e.level][e.code] = _Named(q, f, e)
        districts, towns, communities = named["district"], named["town"], named["community"]

        def town_fits(code: str) -> bool:
            return not districts or g.towns[code].district_code in districts

        def community_fits(code: str) -> bool:
            town = g.communities[code].town_code
            if towns:
                return town in towns
            return not districts or g.towns[town].district_code in districts

        results: list[AddressCandidate] = []
        covered_towns: set[str] = set()
        covered_districts: set[str] = set()
        for code, n in communities.items():
            ambiguity = _ambiguity(n.found, "community", code, community_fits)
            if ambiguity is None:
                continue  # another reading of this ambiguous name fits what the caller said
            town = g.communities[code].town_code
            district = g.towns[town].district_code
            conflicts = self._community_conflicts(code, towns, districts)
            agree = (town in towns) + (district in districts)
            if not agree:
                ambiguity += n.found.clipped  # nothing else named says which of them
            results.append(self._candidate("community", code, n, ambiguity, agree, conflicts, named))
            if not conflicts:
                covered_towns.add(town)
                covered_districts.add(district)
        for code, n in towns.items():
            if code in covered_towns:
                continue
            ambiguity = _ambiguity(n.found, "town", code, town_fits)
            if ambiguity is None:
                continue
            district = g.towns[code].district_code
            conflicts = self._town_conflicts(code, districts)
            results.append(self._candidate("town", code, n, ambiguity, district in districts, conflicts, named))
            if not conflicts:
                covered_districts.add(district)
        for code, n in districts.items():
            if code not in covered_districts:
                results.append(self._candidate("district", code, n, 1, 0, [], named))
        said = {code for code, n in districts.items() if n.found.source == "final" and not n.found.phonetic}
        if len(said) > 1:
            results = [c.model_copy(update={"confidence": min(c.confidence, RIVAL_DISTRICTS)}) for c in results]
        results.sort(key=lambda c: (-c.confidence, -DEPTH[c.level]))
        floor = self.settings.min_confidence
        kept = [c for c in results if c.confidence >= floor][: self.settings.max_candidates]
        return [c.model_copy(update={"confidence": shown_confidence(c.confidence)}) for c in kept]

    def _community_conflicts(self, code: str, towns: dict[str, _Named], districts: dict[str, _Named]) -> list[Conflict]:
        g = self.gazetteer
        community = g.communities[code]
        town = g.towns[community.town_code]
        district = g.districts[town.district_code]
        out: list[Conflict] = []
        if towns and town.code not in towns:
            named = "、".join(g.towns[c].name for c in towns)
            out.append(
                Conflict(
                    kind="community_not_in_town",
                    message=f"{community.name}不在{named}{COMMA}在{district.name}{town.name}",
                    named=named,
                    place=community.name,
                    actual=f"{district.name}{town.name}",
                )
            )
        elif districts and district.code not in districts:
            named = "、".join(g.districts[c].name for c in districts)
            out.append(
                Conflict(
                    kind="community_not_in_district",
                    message=f"{community.name}不在{named}{COMMA}在{district.name}{town.name}",
                    named=named,
                    place=community.name,
                    actual=f"{district.name}{town.name}",
                )
            )
        return out

    def _town_conflicts(self, code: str, districts: dict[str, _Named]) -> list[Conflict]:
        g = self.gazetteer
        town = g.towns[code]
        district = g.districts[town.district_code]
        if not districts or district.code in districts:
            return []
        named = "、".join(g.districts[c].name for c in districts)
        return [
            Conflict(
                kind="town_not_in_district",
                message=f"{town.name}不在{named}{COMMA}在{district.name}",
                named=named,
                place=town.name,
                actual=district.name,
            )
        ]

    def _candidate(
        self,
        level: Level,
        code: str,
        deepest: _Named,
        ambiguity: int,
        agree: int,
        conflicts: list[Conflict],
        named: dict[Level, dict[str, _Named]],
    ) -> AddressCandidate:
        g = self.gazetteer
        community = g.communities[code] if level == "community" else None
        town = g.towns[community.town_code] if community else g.towns[code] if level == "town" else None
        district = g.districts[town.district_code] if town else g.districts[code]
        confidence = BASE_WEIGHT * deepest.quality / math.sqrt(max(1, ambiguity))
        if level == "community" and not agree:
            confidence *= LONE_COMMUNITY_FACTOR
        confidence += AGREEMENT_BONUS * agree
        if conflicts:
            confidence -= CONFLICT_PENALTY
        confidence = round(max(0.0, min(0.99, confidence)), 3)
        # Mentions that support this candidate, level by level.
        support: list[_Named] = [deepest]
        if level == "community" and town and town.code in named["town"]:
            support.append(named["town"][town.code])
        if level != "district" and district.code in named["district"]:
            support.append(named["district"][district.code])
        mentions = [
            Mention(
                text=s.found.text,
                start=s.found.start,
                end=s.found.end,
                source=s.found.source,
                level=s.entry.level,
                name=self._name(s.entry),
                kind="phonetic" if s.found.phonetic else s.entry.kind,
                score=round(s.found.score, 3),
            )
            for s in support
        ]
        mentions.sort(key=lambda m: (m.source != "final", m.start))
        phonetic = any(s.found.phonetic for s in support)
        lng: float | None = district.lng
        lat: float | None = district.lat
        coord_level: Literal["district", "town"] = "district"
        bbox: BBox | None = district.bbox
        if town is not None and town.lng is not None and town.lat is not None:
            lng, lat, coord_level, bbox = town.lng, town.lat, "town", town.bbox
        return AddressCandidate(
            district=district.name,
            town=town.name if town else None,
            community=community.name if community else None,
            adcode=code,
            district_code=district.code,
            town_code=town.code if town else None,
            community_code=community.code if community else None,
            lng=lng,
            lat=lat,
            coord_level=coord_level,
            bbox=bbox,
            level=level,
            confidence=confidence,
            source="gazetteer+phonetic" if phonetic else "gazetteer",
            mentions=mentions,
            conflicts=conflicts,
        )

    def _name(self, entry: LexEntry) -> str:
        g = self.gazetteer
        if entry.level == "district":
            return g.districts[entry.code].name
        if entry.level == "town":
            return g.towns[entry.code].name
        return g.communities[entry.code].name


def _heard_over(hit: PhoneticHit, t: Text) -> bool:
    """A longer name heard whole by sound, suffix written, over the shorter names written inside it, replaces
    them (巴宝山街道 is 八宝山街道, not 宝山镇 with the wrong suffix; 长杨镇 is 长阳镇, not 杨镇): the longer
    name accounts for every syllable heard, the shorter one leaves a syllable of the name unexplained."""
    inside = [f for f in t.chosen if f.overlaps(hit.start, hit.end)]
    if not inside or any(f.phonetic or f.start < hit.start or f.end > hit.end for f in inside):
        return False
    return all(f.end - f.start < hit.end - hit.start for f in inside)


def _longer_names(names: Sequence[str]) -> dict[tuple[str, int], int]:
    """(name, k) → how many distinct names are that name with k more characters before it."""
    longer: dict[tuple[str, int], int] = {}
    for name in set(names):
        for k in range(1, MAX_CLIPPED + 1):
            if len(name) - k >= 3:
                longer[(name[k:], k)] = longer.get((name[k:], k), 0) + 1
    return longer


def _ambiguity(found: Found, level: Level, code: str, fits: Callable[[str], bool]) -> int | None:
    """How many readings of this mention, at this level, are as good as `code` — among those that fit the
    other levels named, if any does; None when `code` does not fit but another reading does."""
    quality: dict[str, float] = {}
    for e in found.entries:
        if e.level == level:
            quality[e.code] = max(quality.get(e.code, 0.0), found.quality(e))
    fitting = [c for c in quality if fits(c)]
    pool = fitting or list(quality)
    if code not in pool:
        return None
    mine = quality[code]
    return sum(1 for c in pool if quality[c] >= mine - 1e-9)


def _over_heard_suffixes(candidate: AddressCandidate, text: str) -> AddressCandidate:
    """The candidate with each sound-alike mention of the final widened over the division suffix heard after it
    (海电|器 is 海淀区, 中官村接|等 中关村街道): the desk and the ticket write the official name over all of it."""
    mentions = [
        _over_heard_suffix(m, text) if m.source == "final" and m.kind == "phonetic" else m for m in candidate.mentions
    ]
    return candidate if mentions == candidate.mentions else candidate.model_copy(update={"mentions": mentions})


def _over_heard_suffix(m: Mention, text: str) -> Mention:
    suffix = division_suffix(m.name)
    missing = len(m.name) - (m.end - m.start)
    if not suffix or not 0 < missing <= len(suffix):
        return m
    heard = text[m.end : m.end + missing]
    wanted = m.name[-missing:]
    if len(heard) < missing or not all(sounds_like(h, w) for h, w in zip(heard, wanted, strict=True)):
        return m
    return m.model_copy(update={"end": m.end + missing, "text": m.text + heard})
