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
from dataclasses import dataclass

from assist.address.gazetteer import Gazetteer
from assist.address.loose import LooseHit, LooseMatcher

# Two of a name's syllables heard right (fuzzy-equal), the others close: 王平这 for 王平镇, 李弦强 for 礼贤镇.
ANCHORS = 2


@dataclass(frozen=True, slots=True)
class Place:
    phrase: str  # the official name, or the colloquial one, as the prompt says it
    district_codes: frozenset[str]
    town_codes: frozenset[str]  # empty for a district


class PlacesAnywhere:
    def __init__(self, gazetteer: Gazetteer, alike: Mapping[str, frozenset[str]]) -> None:
        places: dict[str, Place] = {}
        names: list[tuple[str, str]] = []  # (what is heard, the place's phrase)
        towns_by_name: dict[str, set[str]] = defaultdict(set)
        for town in gazetteer.towns.values():
            if town.current:
                towns_by_name[town.name].add(town.code)
        for name, codes in towns_by_name.items():
            districts = frozenset(gazetteer.towns[c].district_code for c in codes)
            places[name] = Place(name, districts, frozenset(codes))
            names.append((name, name))
            if name.endswith("街道"):
                names.append((name[:-1], name))  # 白纸坊街
            for code in codes:
                names += [(a, name) for a, kind in gazetteer.towns[code].aliases if kind == "stem" and len(a) >= 2]
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

    def scan(self, text: str, least_score: float) -> list[tuple[LooseHit, Place]]:
        """Places that sound like part of `text` (normalised), best first, one hit per place."""
        return [(hit, self.places[hit.key]) for hit in self._matcher.scan(text, least_score, anchors=ANCHORS)]

    def sounding_like(self, text: str, least_score: float, limit: int) -> list[str]:
        """The phrases of the places most like part of `text`, for a decode prompt."""
        return list(dict.fromkeys(place.phrase for _, place in self.scan(text, least_score)))[:limit]
