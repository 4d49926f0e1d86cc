"""Every place name of Beijing a caller may say alone (districts, streets/towns with their stems, colloquial
areas), matched loosely against a line that named no place: what a guided second decode should listen for, and
whether a name that decode wrote has a trace in what was first heard.

A line that names no place is the common case, and a loose match over 400-odd names finds something in much
ordinary speech, so a hit here proves nothing: it only chooses the names to put in the recogniser's prompt, and
checks the echo of a name the prompted decode then wrote out in full.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace

from assist.address.common_words import common_words, is_common_word
from assist.address.gazetteer import Gazetteer, Town
from assist.address.loose import NEAR_INITIAL, LooseHit, LooseMatcher, loose_char
from assist.address.phonetic import EXACT, FUZZY, either_initial, fuzzy, is_han, primary

# Two of a name's syllables heard right (fuzzy-equal), the others close: 王平这 for 王平镇, 李弦强 for 礼贤镇.
ANCHORS = 2
DIVISION_SUFFIXES = ("街道", "地区", "区", "镇", "乡")
NAME_SUFFIXES = (*DIVISION_SUFFIXES, "街", "社区", "村")  # what ends a place's name as a caller says it
# Or one of its stem and its division suffix, every syllable of the stem at least this close (艳颜街道 for 燕园街道,
# 花香 for 花乡, 福祠中香 for 佛子庄乡): the suffix says a place was named, if it is heard as itself or as the
# recogniser's commonest slip for it (区 as 期, 镇 as 阵, 街道 as 街等). Not as a syllable of everyday words (间,
# 见, 件 for 镇; 机, 西 for 区): 杨神间 in a real clip of history is not 杨宋镇.
SUFFIX_ANCHORED_LEAST = 0.5
SUFFIX_AS_ITSELF: dict[str, frozenset[str]] = {
    "区": frozenset({"qu", "qi"}),
    "镇": frozenset({"zhen", "zheng"}),
    "乡": frozenset({"xiang"}),
    "街": frozenset({"jie"}),
    "道": frozenset({"dao", "deng"}),
    "地": frozenset({"di"}),
}
# For a line the recogniser will score against the audio (which then decides, not the text), a suffix heard as any
# syllable this recogniser writes for it on the telephone: 渤海镇 heard as 我海镜, 崔村镇 as 推村陈, 四合堂村 as
# 四和唐生, 方庄街道 as 方中接的.
SUFFIX_HEARD_LOOSELY: dict[str, frozenset[str]] = {
    "区": frozenset({"qu", "qi", "ju", "xu"}),
    "镇": frozenset({"zhen", "zheng", "zen", "chen", "jing", "jin", "jian"}),
    "乡": frozenset({"xiang", "xian"}),
    "街": frozenset({"jie"}),
    "道": frozenset({"dao", "deng", "de", "dou"}),
    "地": frozenset({"di"}),
    "社": frozenset({"she", "shi", "se"}),
    "村": frozenset({"cun", "fen", "chun", "zun", "sheng", "cheng", "zhen", "chen"}),
}
# ... with either initial of a flat/retroflex pair (z/zh, c/ch, s/sh), which telephone Mandarin blurs: 四合堂村
# heard as 死和唐僧 (seng for sheng) counts as 四和唐生 does.
_SUFFIX_HEARD_LOOSELY_EITHER = {
    ch: frozenset().union(*map(either_initial, heard)) for ch, heard in SUFFIX_HEARD_LOOSELY.items()
}
LOOSE_STEM_LEAST = 0.3  # every syllable of the stem of a place found so at least this close (多 for 窦 is not)


def heard_town_names(town: Town) -> list[str]:
    """What a caller says for a street/town: its name, 白纸坊街 for 白纸坊街道, its stems."""
    names = [town.name]
    if town.name.endswith("街道"):
        names.append(town.name[:-1])
    return names + [alias for alias, kind in town.aliases if kind == "stem" and len(alias) >= 2]


@dataclass(frozen=True, slots=True)
class Place:
    phrase: str  # the official name, or the colloquial one, as the prompt says it
    district_codes: frozenset[str]
    town_codes: frozenset[str]  # empty for a district


class PlacesAnywhere:
    def __init__(self, gazetteer: Gazetteer, alike: Mapping[str, frozenset[str]]) -> None:
        common_words()  # read now, with the gazetteer, not by the first line heard
        places: dict[str, Place] = {}
        names: list[tuple[str, str]] = []  # (what is heard, the place's phrase)
        towns_by_name: dict[str, set[str]] = defaultdict(set)
        for town in gazetteer.towns.values():
            if town.current:
                towns_by_name[town.name].add(town.code)
        for name, codes in towns_by_name.items():
            districts = frozenset(gazetteer.towns[c].district_code for c in codes)
            places[name] = Place(name, districts, frozenset(codes))
            for code in codes:
                names += [(heard, name) for heard in heard_town_names(gazetteer.towns[code])]
        for district in gazetteer.districts.values():
            places[district.name] = Place(district.name, frozenset({district.code}), frozenset())
            names.append((district.name, district.name))
        for area in gazetteer.colloquial:
            area_towns = frozenset(c for c in area.town_codes if c in gazetteer.towns)
            if area_towns and area.name not in places:
                districts = frozenset(gazetteer.towns[c].district_code for c in area_towns)
                places[area.name] = Place(area.name, districts, area_towns)
                names.append((area.name, area.name))
        self.places = places
        self._matcher = LooseMatcher(names, alike=alike, unanchored=frozenset("街道镇乡地区"))
        self._by_suffix = SuffixAnchored(names, alike)
        self._loosely = LooselySuffixed(names, (*DIVISION_SUFFIXES, "街"), alike)  # 街: 白纸坊街

    def scan(self, text: str, least_score: float) -> list[tuple[LooseHit, Place]]:
        """Places that sound like part of `text` (normalised), best first, one hit per place."""
        anchored = self._matcher.scan(text, least_score, anchors=ANCHORS)
        seen = {hit.key for hit in anchored}
        by_suffix = [h for h in self._by_suffix.scan(text, least_score) if h.key not in seen]
        hits = sorted([*anchored, *by_suffix], key=lambda h: -h.score)
        return [(hit, self.places[hit.key]) for hit in hits]

    def scan_loosely(self, text: str, least_score: float) -> list[tuple[LooseHit, Place]]:
        """Places with a suffix heard loosely (`LooselySuffixed`), best first: many more than `scan` finds, for
        the audio to choose from, not proof of a place."""
        return [(hit, self.places[hit.key]) for hit in self._loosely.scan(text, least_score)]

    def sounding_like(self, text: str, least_score: float, limit: int) -> list[str]:
        """The phrases of the places most like part of `text` that it could be the name of, for a decode prompt
        (a place only near in sound to another word, 马坊 to 麻烦, would not be believed if the decode wrote it)."""
        places = [place.phrase for hit, place in self.scan(text, least_score) if heard_as_the_name(text, hit)]
        return list(dict.fromkeys(places))[:limit]


def heard_as_the_name(text: str, hit: LooseHit) -> bool:
    """The heard span could be the name itself: a character of it written, every syllable heard exactly (梁香 for
    良乡) unless it is an everyday word (任何, "any", for 仁和), or its suffix heard (镇 as 阵, not as 进). A decode
    prompted with the name writes it readily, so a span that is another word only near in sound (麻烦 for 马坊, in
    麻烦记一下), or the same in sound, does not echo the name it wrote."""
    heard = text[hit.start : hit.end]
    if set(heard) & set(hit.surface) or suffix_heard(hit):
        return True
    return all(sim >= EXACT for sim in hit.sims) and not is_common_word(heard)


def suffix_heard(hit: LooseHit) -> bool:
    """The name has a division or community suffix and the line has it where the name ends, as itself or as the
    phone makes it (镇 as 阵; 望京街 over 望景快 has no 街 heard)."""
    return hit.surface.endswith(NAME_SUFFIXES) and bool(hit.sims) and hit.sims[-1] >= NEAR_INITIAL


class SuffixAnchored:
    """The names with a division suffix, each scored only in the few characters before a place where the line has
    that suffix heard as itself, so one syllable of the stem is anchor enough (a scan of every window with one
    syllable right, over every name, would take 4 ms a line)."""

    WINDOW = 10  # characters before the suffix's end: the longest names are 8 syllables

    def __init__(self, names: list[tuple[str, str]], alike: Mapping[str, frozenset[str]]) -> None:
        groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for heard, phrase in names:
            suffix = next((x for x in DIVISION_SUFFIXES if heard.endswith(x)), None)
            if suffix is not None and len(heard) > len(suffix):
                groups[suffix].append((heard, phrase))
        self._matchers = {
            suffix: LooseMatcher(group, alike=alike, unanchored=frozenset(suffix)) for suffix, group in groups.items()
        }

    def scan(self, text: str, least_score: float) -> list[LooseHit]:
        readings = [primary(ch) for ch in text]
        best: dict[str, LooseHit] = {}
        for suffix, matcher in self._matchers.items():
            for end in _heard_as_itself(suffix, readings):
                start = max(0, end - self.WINDOW)
                for hit in matcher.scan(text[start:end], least_score, anchors=1):
                    if hit.end + start != end or not _stem_close(hit, len(suffix)):
                        continue
                    if hit.key not in best or hit.score > best[hit.key].score:
                        best[hit.key] = replace(hit, start=hit.start + start, end=end)
        return list(best.values())


def _heard_as_itself(suffix: str, readings: list[frozenset[str]]) -> list[int]:
    """Where `suffix` ends in the text, heard as itself."""
    n = len(suffix)
    return [
        end
        for end in range(n, len(readings) + 1)
        if all(readings[end - n + k] & SUFFIX_AS_ITSELF[ch] for k, ch in enumerate(suffix))
    ]


def _stem_close(hit: LooseHit, suffix_len: int) -> bool:
    """One syllable of the stem heard right, the others close; a stem of one must be right (花乡 as 花香)."""
    stem = hit.sims[:-suffix_len]
    if hit.dropped or not stem:
        return False
    if len(stem) == 1:
        return stem[0] >= 1.0
    return min(stem) >= SUFFIX_ANCHORED_LEAST and max(stem) >= FUZZY


class CommunitiesAnywhere:
    """Every community of Beijing (7,500-odd names and their aliases), for a line that names nothing else: only
    where the line has a community's suffix as the phone makes it (社区 as 设计/射器/社期, 村 as 分/春), and only
    the few characters before that suffix, against the names with that suffix (a scan of a whole line over all
    names takes 25 ms)."""

    WINDOW = 10  # characters before the suffix: the longest community stems are 8-9 syllables

    def __init__(self, gazetteer: Gazetteer, alike: Mapping[str, frozenset[str]]) -> None:
        by_suffix: dict[str, list[tuple[str, str]]] = {"社区": [], "村": []}
        for community in gazetteer.communities.values():
            for name in (community.name, *(a for a in community.aliases if len(a) >= 3)):
                suffix = next((x for x in by_suffix if name.endswith(x)), None)
                if suffix is not None:
                    by_suffix[suffix].append((name, community.code))
        self._village = alike["村"]
        self._she, self._qu = alike["社"], alike["区"]
        self._communities = LooseMatcher(by_suffix["社区"], alike=alike, unanchored=frozenset("社区"))
        self._villages = LooseMatcher(by_suffix["村"], alike=alike, unanchored=frozenset("村"))
        self._loosely = LooselySuffixed([*by_suffix["社区"], *by_suffix["村"]], ("社区", "村"), alike)

    def scan(self, text: str, least_score: float) -> list[LooseHit]:
        """Communities whose whole name, suffix included, sounds like part of `text` (normalised), best first."""
        readings = [primary(ch) for ch in text]
        best: dict[str, LooseHit] = {}
        for end, matcher in self._suffix_ends(readings):
            start = max(0, end - self.WINDOW)
            for hit in matcher.scan(text[start:end], least_score, anchors=ANCHORS):
                if hit.end + start == end and (hit.key not in best or hit.score > best[hit.key].score):
                    best[hit.key] = replace(hit, start=hit.start + start, end=end)
        return sorted(best.values(), key=lambda h: -h.score)

    def scan_loosely(self, text: str, least_score: float) -> list[LooseHit]:
        """Communities with their suffix heard loosely (`LooselySuffixed`; 成艳社区 for 诚苑社区), best first: for
        the audio to choose from, not proof."""
        return self._loosely.scan(text, least_score)

    def _suffix_ends(self, readings: list[frozenset[str]]) -> list[tuple[int, LooseMatcher]]:
        ends: list[tuple[int, LooseMatcher]] = []
        for i, options in enumerate(readings):
            if options & self._village:
                ends.append((i + 1, self._villages))
            if i > 0 and options & self._qu and readings[i - 1] & self._she:
                ends.append((i + 1, self._communities))
        return ends


@dataclass(frozen=True, slots=True)
class _Suffixed:
    surface: str
    key: str
    stem: tuple[frozenset[str], ...]


class LooselySuffixed:
    """Names with a suffix, each scored only where the line has that suffix heard loosely (SUFFIX_HEARD_LOOSELY)
    and against the characters right before it: one syllable of the stem heard right, the others at least
    LOOSE_STEM_LEAST close, a stem of one syllable right. The suffix counts as heard. A name is looked up by a
    stem syllable at its distance from the suffix, so a line costs a few lookups, not a scan of thousands of
    names (a LooseMatcher with one anchor over the 7,500 communities took 37 ms a line at p95)."""

    def __init__(
        self, names: list[tuple[str, str]], suffixes: tuple[str, ...], alike: Mapping[str, frozenset[str]]
    ) -> None:
        self._suffixes = suffixes
        # (suffix, fuzzy syllable, its distance before the suffix) -> names
        self._index: dict[tuple[str, str, int], list[_Suffixed]] = defaultdict(list)
        for surface, key in dict.fromkeys(names):
            suffix = next((x for x in suffixes if surface.endswith(x)), None)
            if suffix is None or len(surface) == len(suffix):
                continue
            stem = tuple(primary(ch) | alike.get(ch, frozenset()) for ch in surface[: -len(suffix)])
            name = _Suffixed(surface, key, stem)
            for pos, options in enumerate(stem):
                for syllable in {fuzzy(x) for x in options}:
                    self._index[(suffix, syllable, len(stem) - pos)].append(name)

    def scan(self, text: str, least_score: float) -> list[LooseHit]:
        """Hits scoring at least `least_score` (the mean over the stem's syllables and the suffix's, which count
        1), best first, one per key."""
        han = [i for i, ch in enumerate(text) if is_han(ch)]
        chars = [primary(text[i]) for i in han]
        best: dict[str, LooseHit] = {}
        for suffix in self._suffixes:
            n = len(suffix)
            for first in range(1, len(chars) - n + 1):  # the suffix's first character, a stem before it
                if not all(chars[first + k] & _SUFFIX_HEARD_LOOSELY_EITHER[ch] for k, ch in enumerate(suffix)):
                    continue
                for name in self._named_before(suffix, chars, first):
                    sims = [loose_char(chars[first - len(name.stem) + k], c) for k, c in enumerate(name.stem)]
                    if min(sims) < (1.0 if len(sims) == 1 else LOOSE_STEM_LEAST):
                        continue
                    score = (sum(sims) + n) / (len(sims) + n)
                    if score < least_score or (name.key in best and best[name.key].score >= score):
                        continue
                    start, end = han[first - len(name.stem)], han[first + n - 1] + 1
                    hit = LooseHit(start, end, name.surface, name.key, score, min(sims), (*sims, *[1.0] * n))
                    best[name.key] = hit
        return sorted(best.values(), key=lambda h: -h.score)

    def _named_before(self, suffix: str, chars: list[frozenset[str]], first: int) -> list[_Suffixed]:
        """The names with a stem syllable heard right at its place before the suffix at `first`."""
        found: dict[int, _Suffixed] = {}
        for distance in range(1, min(first, SuffixAnchored.WINDOW) + 1):
            for syllable in {fuzzy(x) for x in chars[first - distance]}:
                for name in self._index.get((suffix, syllable, distance), ()):
                    if len(name.stem) <= first:
                        found[id(name)] = name
        return list(found.values())
