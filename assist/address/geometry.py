"""Small planar geometry on lng/lat degrees: point in polygon, bounding boxes, Douglas-Peucker simplification.

Good enough for what the gazetteer needs (checking that a box lies in its district, drawing boundaries on a
map); not a GIS.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Point = tuple[float, float]  # (lng, lat)
Ring = list[Point]
Polygon = list[Ring]  # outer ring first, then holes
BBox = tuple[float, float, float, float]  # (min_lng, min_lat, max_lng, max_lat)


def polygons_of(geometry: dict[str, Any]) -> list[Polygon]:
    """The polygons of a GeoJSON Polygon or MultiPolygon geometry."""
    kind = geometry.get("type")
    coords = geometry.get("coordinates", [])
    raw = [coords] if kind == "Polygon" else coords if kind == "MultiPolygon" else []
    return [[[(float(p[0]), float(p[1])) for p in ring] for ring in poly] for poly in raw]


def _in_ring(point: Point, ring: Sequence[Point]) -> bool:
    x, y = point
    inside = False
    n = len(ring)
    j = n - 1
    for i in range(n):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def contains(polygons: Iterable[Polygon], point: Point) -> bool:
    """Whether the point lies inside any polygon (outside its holes)."""
    for poly in polygons:
        if poly and _in_ring(point, poly[0]) and not any(_in_ring(point, hole) for hole in poly[1:]):
            return True
    return False


def bbox_of(polygons: Iterable[Polygon]) -> BBox:
    xs: list[float] = []
    ys: list[float] = []
    for poly in polygons:
        for x, y in poly[0]:
            xs.append(x)
            ys.append(y)
    return (min(xs), min(ys), max(xs), max(ys))


def bbox_center(box: BBox) -> Point:
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def bbox_samples(box: BBox) -> list[Point]:
    """Centre, then the four corners."""
    return [
        bbox_center(box),
        (box[0], box[1]),
        (box[2], box[3]),
        (box[0], box[3]),
        (box[2], box[1]),
    ]


def _distance_to_segment(p: Point, a: Point, b: Point) -> float:
    (px, py), (ax, ay), (bx, by) = p, a, b
    dx, dy = bx - ax, by - ay
    if dx == 0 and dy == 0:
        return float(((px - ax) ** 2 + (py - ay) ** 2) ** 0.5)
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    cx, cy = ax + t * dx, ay + t * dy
    return float(((px - cx) ** 2 + (py - cy) ** 2) ** 0.5)


def simplify_line(points: Sequence[Point], tolerance: float) -> list[Point]:
    """Douglas-Peucker (iterative): keeps the end points and every point farther than tolerance from the chord."""
    if len(points) < 3:
        return list(points)
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        worst, index = 0.0, -1
        for i in range(first + 1, last):
            d = _distance_to_segment(points[i], points[first], points[last])
            if d > worst:
                worst, index = d, i
        if index >= 0 and worst > tolerance:
            keep[index] = True
            stack.append((first, index))
            stack.append((index, last))
    return [p for p, k in zip(points, keep, strict=True) if k]


def simplify_ring(ring: Sequence[Point], tolerance: float) -> Ring | None:
    """A closed ring simplified; None when it collapses (fewer than 4 points, i.e. a triangle plus closure)."""
    if len(ring) < 4:
        return None
    # Split at the point farthest from the start so that the two halves have distinct end points.
    start = ring[0]
    far = max(range(len(ring)), key=lambda i: (ring[i][0] - start[0]) ** 2 + (ring[i][1] - start[1]) ** 2)
    first = simplify_line(ring[: far + 1], tolerance)
    second = simplify_line(ring[far:], tolerance)
    out = first[:-1] + second
    if out[0] != out[-1]:
        out.append(out[0])
    return out if len(out) >= 4 else None


def simplify_polygons(polygons: Iterable[Polygon], tolerance: float, digits: int = 5) -> list[Polygon]:
    """Simplified polygons, coordinates rounded (5 decimals ≈ 1 m); collapsed rings and polygons are dropped."""
    out: list[Polygon] = []
    for poly in polygons:
        rings: Polygon = []
        for k, ring in enumerate(poly):
            simple = simplify_ring(ring, tolerance)
            if simple is None:
                if k == 0:
                    break
                continue
            rings.append([(round(x, digits), round(y, digits)) for x, y in simple])
        if rings:
            out.append(rings)
    return out
