"""The Beijing gazetteer in memory: districts → streets/towns → communities/villages, read from the built file."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assist.address.geometry import BBox

FORMAT = "hotline-gazetteer/1"  # what `hotline-tools gazetteer build` writes; bump both on a change


class GazetteerMissing(FileNotFoundError):
    """The gazetteer file has not been built (or is unreadable / of another format)."""


@dataclass(frozen=True, slots=True)
class District:
    code: str  # 6-digit adcode
    name: str  # 海淀区
    short: str  # 海淀
    lng: float
    lat: float
    bbox: BBox


@dataclass(frozen=True, slots=True)
class Town:
    code: str  # 9-digit MCA code (NBS code for the NBS-only development zones)
    nbs_code: str | None  # 12-digit NBS code
    name: str  # current MCA name: 南磨房乡
    kind: str  # 街道 | 镇 | 乡 | 地区 | 其他
    district_code: str
    current: bool  # False for NBS-only units (development zones) that MCA does not list
    aliases: tuple[tuple[str, str], ...]  # (alias, kind): nbs | variant | stem
    bbox: BBox | None
    lng: float | None
    lat: float | None


@dataclass(frozen=True, slots=True)
class Community:
    code: str  # 12-digit NBS code
    name: str  # 多福巷社区, 韩家川村
    kind: str  # 社区 | 村
    town_code: str
    aliases: tuple[str, ...]  # bare names: 多福巷, 韩家川


@dataclass(frozen=True, slots=True)
class Colloquial:
    name: str  # 回龙观
    town_codes: tuple[str, ...]  # main town first


@dataclass
class Gazetteer:
    path: Path
    built_at: str
    crs: str
    sources: list[dict[str, str]]
    counts: dict[str, int]
    districts: dict[str, District]
    towns: dict[str, Town]
    communities: dict[str, Community]
    colloquial: list[Colloquial]
    communities_by_town: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Gazetteer:
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                raw: dict[str, Any] = json.load(fh)
        except FileNotFoundError as exc:
            raise GazetteerMissing(f"gazetteer {path} not found: build it: `hotline-tools gazetteer build`") from exc
        except (OSError, ValueError) as exc:
            raise GazetteerMissing(f"gazetteer {path} is unreadable ({exc}): rebuild it") from exc
        if raw.get("format") != FORMAT:
            raise GazetteerMissing(f"gazetteer {path} has format {raw.get('format')!r}, expected {FORMAT}")
        districts = {
            d["code"]: District(d["code"], d["name"], d["short"], d["lng"], d["lat"], tuple(d["bbox"]))
            for d in raw["districts"]
        }
        towns = {
            t["code"]: Town(
                code=t["code"],
                nbs_code=t["nbs_code"],
                name=t["name"],
                kind=t["kind"],
                district_code=t["district"],
                current=t["current"],
                aliases=tuple((a, k) for a, k in t["aliases"]),
                bbox=tuple(t["bbox"]) if "bbox" in t else None,
                lng=t.get("lng"),
                lat=t.get("lat"),
            )
            for t in raw["towns"]
        }
        communities = {
            c["code"]: Community(c["code"], c["name"], c["kind"], c["town"], tuple(c["aliases"]))
            for c in raw["communities"]
        }
        by_town: dict[str, list[str]] = defaultdict(list)
        for community in communities.values():
            by_town[community.town_code].append(community.code)
        return cls(
            path=path,
            built_at=raw["built_at"],
            crs=raw["crs"],
            sources=raw["sources"],
            counts=raw["counts"],
            districts=districts,
            towns=towns,
            communities=communities,
            colloquial=[Colloquial(c["name"], tuple(c["towns"])) for c in raw["colloquial"]],
            communities_by_town=dict(by_town),
        )

    def district_of_town(self, town_code: str) -> District:
        return self.districts[self.towns[town_code].district_code]

    def town_of_community(self, community_code: str) -> Town:
        return self.towns[self.communities[community_code].town_code]
