"""The ``address.candidates`` event body: ranked places for one transcript segment.

The bus adds ``call_id``, ``seq`` and ``ts``; ``AddressCandidates.event()`` gives the rest. Coordinates are always
WGS-84 (``crs``); ``adcode`` is the deepest code: 6 digits (district), 9 (street/town, MCA), 12 (community, NBS).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Level = Literal["district", "town", "community"]
MatchKind = Literal["name", "nbs", "variant", "stem", "colloquial", "phonetic", "geocoder"]
TextSource = Literal["final", "partial", "context"]
EVENT_TYPE = "address.candidates"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Mention(_Model):
    """A piece of the caller's words that names a place."""

    text: str
    start: int = Field(description="Character offset in its text (the final segment unless `source` says not).")
    end: int
    source: TextSource = "final"
    level: Level
    name: str = Field(description="The official name it was resolved to (or several, joined by '/').")
    kind: MatchKind
    score: float = Field(description="Match quality 0..1 (exact name 1; phonetic = mean syllable similarity).")


class Conflict(_Model):
    kind: Literal["community_not_in_town", "town_not_in_district", "community_not_in_district"]
    message: str
    named: str = Field(description="What the caller named at the upper level (e.g. the street).")
    place: str = Field(description="The lower-level place (e.g. the community).")
    actual: str = Field(description="Where that place really is.")


class AddressCandidate(_Model):
    district: str | None
    town: str | None
    community: str | None
    adcode: str
    district_code: str | None = None
    town_code: str | None = None
    community_code: str | None = None
    lng: float | None = None
    lat: float | None = None
    crs: Literal["WGS84"] = "WGS84"
    coord_level: Literal["district", "town", "geocoder"] | None = Field(
        None, description="Which place the point belongs to (no registry has community points)."
    )
    bbox: tuple[float, float, float, float] | None = Field(
        None, description="[min_lng, min_lat, max_lng, max_lat] of the street/town (or district), WGS-84."
    )
    level: Level
    confidence: float
    source: str = Field(description="gazetteer, gazetteer+phonetic, gazetteer+amap, amap")
    mentions: list[Mention] = Field(default_factory=list)
    conflicts: list[Conflict] = Field(default_factory=list)


class TextSpan(_Model):
    start: int
    end: int
    text: str


class AddressCandidates(_Model):
    segment_id: str
    text: str
    span: TextSpan | None = Field(None, description="The part of the final segment that names the top place.")
    candidates: list[AddressCandidate] = Field(default_factory=list)
    conflicts: list[Conflict] = Field(default_factory=list)

    def event(self) -> dict[str, Any]:
        """The event body: ``{"type": "address.candidates", ...}`` (the bus adds call_id, seq, ts)."""
        return {"type": EVENT_TYPE, **self.model_dump(mode="json")}

    @property
    def top(self) -> AddressCandidate | None:
        return self.candidates[0] if self.candidates else None


class PlaceHit(_Model):
    """A place the operator found by typing (name, or its pinyin or initials) in the address card."""

    label: str = Field(description="What the list shows, e.g. 中关村街道 · 海淀区.")
    level: Level
    district: str
    town: str | None = None
    community: str | None = None
    adcode: str
    lng: float | None = None
    lat: float | None = None
