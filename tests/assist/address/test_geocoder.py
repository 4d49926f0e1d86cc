"""The Amap geocoder against an httpx MockTransport (no network), datum conversion, the resolver's use of it."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr

from assist.address.coords import from_wgs84, to_wgs84
from assist.address.extract import AddressExtractor
from assist.address.geocoder import AmapGeocoder, GeocoderError, make_geocoder
from assist.address.service import AddressResolver
from assist.address.settings import AddressSettings

# A published GCJ-02 test pair (eviltransform's README): WGS-84 (39.915, 116.404) ↔ GCJ-02 below.
WGS = (116.404, 39.915)
GCJ = (116.41024449916938, 39.91640428150164)


def amap_body(location: str, adcode: str = "110108", district: str = "海淀区") -> dict[str, object]:
    return {
        "status": "1",
        "info": "OK",
        "infocode": "10000",
        "count": "1",
        "geocodes": [
            {
                "formatted_address": "北京市海淀区中关村街道科源社区",
                "country": "中国",
                "province": "北京市",
                "city": "北京市",
                "district": district,
                "township": [],
                "adcode": adcode,
                "location": location,
                "level": "兴趣点",
            }
        ],
    }


def test_datum_conversion_against_a_known_point() -> None:
    lng, lat = to_wgs84(*GCJ, "gcj02")
    assert abs(lng - WGS[0]) < 1e-6 and abs(lat - WGS[1]) < 1e-6
    glng, glat = from_wgs84(*WGS, "gcj02")
    assert abs(glng - GCJ[0]) < 1e-9 and abs(glat - GCJ[1]) < 1e-9
    assert to_wgs84(116.4, 39.9, "cgcs2000") == (116.4, 39.9)
    blng, blat = from_wgs84(*WGS, "bd09")
    back = to_wgs84(blng, blat, "bd09")
    assert abs(back[0] - WGS[0]) < 1e-5 and abs(back[1] - WGS[1]) < 1e-5


async def test_amap_request_and_conversion() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=amap_body(f"{GCJ[0]:.6f},{GCJ[1]:.6f}"))

    geocoder = AmapGeocoder("test-key", transport=httpx.MockTransport(handler))
    try:
        results = await geocoder.geocode("北京市海淀区中关村街道科源社区")
    finally:
        await geocoder.aclose()
    assert seen[0].url.path == "/v3/geocode/geo"
    params = seen[0].url.params
    assert params["key"] == "test-key" and params["city"] == "北京" and params["address"].startswith("北京市")
    (result,) = results
    assert abs(result.lng - WGS[0]) < 1e-5 and abs(result.lat - WGS[1]) < 1e-5  # stored in WGS-84
    assert (result.source_datum, result.adcode, result.district, result.town) == ("gcj02", "110108", "海淀区", None)


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(200, json={"status": "0", "info": "INVALID_USER_KEY", "infocode": "10001"}), "INVALID"),
        (httpx.Response(500, text="oops"), "HTTP 500"),
        (httpx.Response(200, text="<html>"), "not JSON"),
    ],
)
async def test_amap_errors(response: httpx.Response, message: str) -> None:
    geocoder = AmapGeocoder("k", transport=httpx.MockTransport(lambda request: response))
    with pytest.raises(GeocoderError, match=message):
        await geocoder.geocode("x")
    await geocoder.aclose()


async def test_amap_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    geocoder = AmapGeocoder("k", transport=httpx.MockTransport(handler))
    with pytest.raises(GeocoderError, match="timed out"):
        await geocoder.geocode("x")
    await geocoder.aclose()


def test_geocoder_is_off_by_default_and_needs_a_key() -> None:
    assert make_geocoder(AddressSettings()) is None
    with pytest.raises(ValueError, match="AMAP_KEY"):
        make_geocoder(AddressSettings(geocoder="amap"))
    geocoder = make_geocoder(AddressSettings(geocoder="amap", amap_key=SecretStr("k")))
    assert geocoder is not None and geocoder.name == "amap"


async def test_resolver_places_a_community_with_the_geocoder(extractor: AddressExtractor) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps(amap_body(f"{GCJ[0]},{GCJ[1]}")).encode())

    settings = AddressSettings(geocoder="amap", amap_key=SecretStr("k"))
    resolver = AddressResolver(extractor, make_geocoder(settings, transport=httpx.MockTransport(handler)), settings)
    try:
        result = await resolver.resolve("海淀区中关村街道科源社区楼道里堆满了杂物", "s1")
    finally:
        await resolver.aclose()
    top = result.top
    assert top is not None and top.community == "科源社区"
    assert top.coord_level == "geocoder" and top.source == "gazetteer+amap" and top.crs == "WGS84"
    assert abs((top.lng or 0) - WGS[0]) < 1e-5


async def test_resolver_keeps_local_result_when_the_geocoder_fails_or_disagrees(
    extractor: AddressExtractor,
) -> None:
    settings = AddressSettings(geocoder="amap", amap_key=SecretStr("k"))
    failing = make_geocoder(settings, transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    resolver = AddressResolver(extractor, failing, settings)
    result = await resolver.resolve("海淀区中关村街道科源社区", "s1")
    assert result.top is not None and result.top.coord_level == "town"
    await resolver.aclose()
    elsewhere = make_geocoder(
        settings,
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=amap_body("116.5,39.9", "110105", "朝阳区"))),
    )
    resolver = AddressResolver(extractor, elsewhere, settings)
    result = await resolver.resolve("海淀区中关村街道科源社区", "s1")
    assert result.top is not None and result.top.coord_level == "town"
    await resolver.aclose()
