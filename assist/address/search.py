"""Find a place by what the operator types: part of its name, its pinyin, or the pinyin initials (zgc → 中关村).

An index over the gazetteer's streets/towns and communities/villages, built once (about a second, in a thread);
a search scans it in a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from pypinyin import Style, lazy_pinyin

from assist.address.gazetteer import Gazetteer
from events.address import PlaceHit

MAX_QUERY = 40


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    initials: str
    pinyin: str
    rank: int  # towns before communities
    hit: PlaceHit


def _keys(name: str) -> tuple[str, str]:
    return "".join(lazy_pinyin(name, style=Style.FIRST_LETTER)).lower(), "".join(lazy_pinyin(name)).lower()


class PlaceSearch:
    def __init__(self, entries: list[_Entry]) -> None:
        self._entries = entries

    @classmethod
    def from_gazetteer(cls, gazetteer: Gazetteer) -> PlaceSearch:
        entries: list[_Entry] = []
        for town in gazetteer.towns.values():
            if not town.current:
                continue
            district = gazetteer.district_of_town(town.code)
            lng, lat = (town.lng, town.lat) if town.lng is not None else (district.lng, district.lat)
            hit = PlaceHit(
                label=f"{town.name} · {district.name}",
                level="town",
                district=district.name,
                town=town.name,
                adcode=town.code,
                lng=lng,
                lat=lat,
            )
            entries.append(_Entry(town.name, *_keys(town.name), 0, hit))
        for community in gazetteer.communities.values():
            town = gazetteer.town_of_community(community.code)
            district = gazetteer.district_of_town(town.code)
            lng, lat = (town.lng, town.lat) if town.lng is not None else (district.lng, district.lat)
            hit = PlaceHit(
                label=f"{community.name} · {town.name} · {district.name}",
                level="community",
                district=district.name,
                town=town.name,
                community=community.name,
                adcode=community.code,
                lng=lng,
                lat=lat,
            )
            entries.append(_Entry(community.name, *_keys(community.name), 1, hit))
        return cls(entries)

    def search(self, query: str, limit: int = 10) -> list[PlaceHit]:
        q = query.strip().lower()[:MAX_QUERY]
        if not q:
            return []
        scored: list[tuple[int, int, int, PlaceHit]] = []
        for entry in self._entries:
            if entry.name.startswith(q):
                score = 0
            elif q in entry.name:
                score = 1
            elif entry.initials.startswith(q) or entry.pinyin.startswith(q):
                score = 2
            else:
                continue
            scored.append((score, entry.rank, len(entry.name), entry.hit))
        scored.sort(key=lambda item: item[:3])
        return [hit for *_, hit in scored[:limit]]
