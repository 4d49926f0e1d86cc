"""Online geocoders (pluggable; off by default): a text address → points, always returned in WGS-84.

Amap first (``/v3/geocode/geo``, GCJ-02 coordinates, converted with prcoords). Others (Baidu: BD-09; Tianditu:
CGCS2000) implement the same protocol. Nothing here runs unless settings turn a geocoder on with a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from assist.address.coords import Datum, to_wgs84
from assist.address.settings import AddressSettings


class GeocoderError(RuntimeError):
    """The geocoder failed (network, timeout, refused key, malformed answer); the message says which."""


@dataclass(frozen=True)
class GeocodeResult:
    provider: str
    formatted_address: str
    lng: float  # WGS-84
    lat: float
    adcode: str | None = None  # district adcode (6 digits) as the provider gives it
    district: str | None = None
    town: str | None = None
    level: str | None = None  # the provider's precision word (e.g. Amap: 区县, 乡镇, 兴趣点)
    source_lng: float | None = None  # as the provider sent it, in `source_datum`
    source_lat: float | None = None
    source_datum: Datum = "wgs84"


class Geocoder(Protocol):
    name: str

    async def geocode(self, address: str, *, city: str = "北京") -> list[GeocodeResult]:
        """Points for an address (best first); [] when the provider finds nothing. Raises GeocoderError."""
        ...

    async def aclose(self) -> None: ...


def _text(value: Any) -> str | None:
    """Amap sends [] for empty fields and strings otherwise."""
    return value if isinstance(value, str) and value else None


class AmapGeocoder:
    """Amap web-service geocoding (https://lbs.amap.com/api/webservice/guide/api/georegeo)."""

    name = "amap"

    def __init__(
        self,
        key: str,
        *,
        base_url: str = "https://restapi.amap.com",
        timeout_s: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not key:
            raise ValueError("the Amap geocoder needs a key (HOTLINE_ADDRESS__AMAP_KEY)")
        self._key = key
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport)

    async def geocode(self, address: str, *, city: str = "北京") -> list[GeocodeResult]:
        params = {"key": self._key, "address": address, "city": city, "output": "JSON"}
        try:
            response = await self._client.get("/v3/geocode/geo", params=params)
        except httpx.TimeoutException as exc:
            raise GeocoderError(f"amap: timed out ({exc.__class__.__name__})") from exc
        except httpx.HTTPError as exc:
            raise GeocoderError(f"amap: request failed: {exc}") from exc
        if response.status_code != 200:
            raise GeocoderError(f"amap: HTTP {response.status_code}")
        try:
            body: dict[str, Any] = response.json()
        except ValueError as exc:
            raise GeocoderError("amap: the answer is not JSON") from exc
        if str(body.get("status")) != "1":
            raise GeocoderError(f"amap: {body.get('info', 'error')} (infocode {body.get('infocode', '?')})")
        results: list[GeocodeResult] = []
        for item in body.get("geocodes") or []:
            location = _text(item.get("location"))
            if not location or "," not in location:
                continue
            try:
                gcj_lng, gcj_lat = (float(v) for v in location.split(",", 1))
            except ValueError:
                continue
            lng, lat = to_wgs84(gcj_lng, gcj_lat, "gcj02")
            results.append(
                GeocodeResult(
                    provider=self.name,
                    formatted_address=_text(item.get("formatted_address")) or address,
                    lng=round(lng, 6),
                    lat=round(lat, 6),
                    adcode=_text(item.get("adcode")),
                    district=_text(item.get("district")),
                    town=_text(item.get("township")),
                    level=_text(item.get("level")),
                    source_lng=gcj_lng,
                    source_lat=gcj_lat,
                    source_datum="gcj02",
                )
            )
        return results

    async def aclose(self) -> None:
        await self._client.aclose()


def make_geocoder(settings: AddressSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> Geocoder | None:
    """The geocoder the settings ask for, or None (the default: no online lookups)."""
    if settings.geocoder == "none":
        return None
    key = settings.amap_key.get_secret_value() if settings.amap_key else ""
    if not key:
        raise ValueError("address.geocoder is 'amap' but no key is set (HOTLINE_ADDRESS__AMAP_KEY)")
    return AmapGeocoder(
        key, base_url=settings.amap_base_url, timeout_s=settings.geocoder_timeout_s, transport=transport
    )
