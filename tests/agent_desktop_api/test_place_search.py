"""Address by typing: the desk's gazetteer search over the real gazetteer (names, pinyin, initials)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assist.address.gazetteer import Gazetteer
from assist.address.search import PlaceSearch
from tests.agent_desktop_api.desktop_support import FakeService, bearer, build_app, make_engine, token


@pytest.fixture
def client_and_token(tmp_path: Path, gazetteer: Gazetteer) -> Iterator[tuple[TestClient, str]]:
    app, desktop, auth = build_app(FakeService(make_engine(tmp_path / "db.sqlite")))
    desktop.place_search = PlaceSearch.from_gazetteer(gazetteer).search
    with TestClient(app) as client:
        yield client, token(client, auth, "op1002")


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("中关村", "中关村街道 · 海淀区"),
        ("zgc", "中关村街道 · 海淀区"),  # pinyin initials
        ("wangjing", "望京街道 · 朝阳区"),  # full pinyin
        ("回龙观", "回龙观街道 · 昌平区"),
        ("科源", "科源社区 · 中关村街道 · 海淀区"),  # a community, with its street and district
    ],
)
def test_a_typed_name_pinyin_or_initials_finds_the_place(
    client_and_token: tuple[TestClient, str], query: str, first: str
) -> None:
    client, op = client_and_token
    response = client.get("/api/gazetteer/search", params={"q": query}, headers=bearer(op))
    assert response.status_code == 200, response.text
    places = response.json()["places"]
    assert places[0]["label"] == first
    assert places[0]["district"] and places[0]["lng"] and places[0]["lat"]


def test_bad_queries_are_refused_and_nothing_is_found_for_nonsense(client_and_token: tuple[TestClient, str]) -> None:
    client, op = client_and_token
    h = bearer(op)
    assert client.get("/api/gazetteer/search", params={"q": ""}, headers=h).status_code == 422
    assert client.get("/api/gazetteer/search", params={"q": "x" * 41}, headers=h).status_code == 422
    assert client.get("/api/gazetteer/search", params={"q": "中关村", "limit": 500}, headers=h).status_code == 422
    assert client.get("/api/gazetteer/search", params={"q": "qqqqqq"}, headers=h).json()["places"] == []
    assert client.get("/api/gazetteer/search", params={"q": "中关村"}).status_code == 401


def test_without_a_gazetteer_the_search_says_so(tmp_path: Path) -> None:
    app, _, auth = build_app(FakeService(make_engine(tmp_path / "db.sqlite")))
    with TestClient(app) as client:
        response = client.get("/api/gazetteer/search", params={"q": "zgc"}, headers=bearer(token(client, auth, "op1")))
    assert response.status_code == 503 and "gazetteer build" in response.json()["detail"]
