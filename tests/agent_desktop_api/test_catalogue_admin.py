"""The catalogue admin API: admin role only; validate, publish, roll back, history, the text of a version; and a
publication in force in the running gateway without a restart (the operator's category list, the assistant)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from agent_desktop_api.app import create_app
from agent_desktop_api.auth import AuthService
from assist.ticket.catalogue import DEFAULT_CATALOGUE
from assist.ticket.versions import CatalogueVersions
from config.database import DatabaseSettings, create_engine
from tests.assist.ticket.test_versions import SHIPPED, WITH_BIKES
from tests.voice.conftest import GatewayStarter, start_gateway

__all__ = ["start_gateway"]  # the real gateway fixture of tests/voice

ROUTES = [
    ("get", "/api/admin/catalogue", None),
    ("get", "/api/admin/catalogue/content", None),
    ("post", "/api/admin/catalogue/validate", {"content": SHIPPED}),
    ("post", "/api/admin/catalogue", {"content": SHIPPED}),
    ("post", "/api/admin/catalogue/rollback", {}),
]


class Env:
    def __init__(self, tmp_path: Path) -> None:
        engine = create_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'db.sqlite'}"))
        self.auth = AuthService(engine, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        self.versions = CatalogueVersions(engine, DEFAULT_CATALOGUE)
        self.client = TestClient(create_app(auth_service=self.auth, catalogue=self.versions))
        self.auth.add_user("ann", "admin", "pw")
        self.auth.add_user("olga", "operator", "pw")

    def headers(self, name: str) -> dict[str, str]:
        response = self.client.post("/api/auth/login", json={"username": name, "password": "pw"})
        return {"Authorization": f"Bearer {response.json()['token']}"}


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


@pytest.mark.parametrize(("method", "url", "body"), ROUTES)
def test_admins_only(env: Env, method: str, url: str, body: object) -> None:
    assert env.client.request(method, url, json=body).status_code == 401
    assert env.client.request(method, url, json=body, headers=env.headers("olga")).status_code == 403


def test_validate_publish_and_roll_back(env: Env) -> None:
    admin = env.headers("ann")
    before = env.client.get("/api/admin/catalogue", headers=admin).json()
    assert before == {"version": None, "history": []}  # the shipped file
    assert env.client.get("/api/admin/catalogue/content", headers=admin).json()["content"] == SHIPPED

    broken = WITH_BIKES.replace("response: 7d, dispatch: town}\n", "response: 3d, dispatch: town}\n", 1)
    refused = env.client.post("/api/admin/catalogue/validate", json={"content": broken}, headers=admin)
    assert refused.status_code == 422
    assert any("children.3.response" in e for e in refused.json()["detail"]["errors"]), refused.json()
    assert env.client.post("/api/admin/catalogue", json={"content": broken}, headers=admin).status_code == 422
    ok = env.client.post("/api/admin/catalogue/validate", json={"content": WITH_BIKES}, headers=admin).json()
    leaves = ok["leaves"]

    published = env.client.post("/api/admin/catalogue", json={"content": WITH_BIKES, "comment": "bikes"}, headers=admin)
    assert published.status_code == 201
    assert published.json() | {"version": 1, "author": "ann", "comment": "bikes", "leaves": leaves} == published.json()
    state = env.client.get("/api/admin/catalogue", headers=admin).json()
    assert state["version"] == 1 and [v["version"] for v in state["history"]] == [1]
    one = env.client.get("/api/admin/catalogue/content", params={"version": 1}, headers=admin).json()
    assert one["content"] == WITH_BIKES
    assert env.client.get("/api/admin/catalogue/content", params={"version": 7}, headers=admin).status_code == 404

    back = env.client.post("/api/admin/catalogue/rollback", json={"comment": "too soon"}, headers=admin).json()
    assert (back["version"], back["restored_from"], back["leaves"]) == (2, None, leaves - 1)  # the shipped file
    assert env.client.post("/api/admin/catalogue/rollback", json={"to": 9}, headers=admin).status_code == 404
    too_big = env.client.post("/api/admin/catalogue", json={"content": "x" * 600_000}, headers=admin)
    assert too_big.status_code == 422


@pytest.mark.slow
async def test_a_published_catalogue_is_in_force_in_the_running_gateway_within_seconds(
    start_gateway: GatewayStarter,
) -> None:
    service = await start_gateway(None, ticket={"reload_s": 0.2})
    await asyncio.to_thread(AuthService(service.engine).add_user, "ann", "admin", "pw")
    await asyncio.to_thread(AuthService(service.engine).add_user, "olga", "operator", "pw")
    base = f"http://{service.settings.http.host}:{service.settings.http.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:

        async def bearer(name: str) -> dict[str, str]:
            response = await client.post("/api/auth/login", json={"username": name, "password": "pw"})
            return {"Authorization": f"Bearer {response.json()['token']}"}

        admin, operator = await bearer("ann"), await bearer("olga")

        async def offered() -> set[str]:
            response = await client.get("/api/ticket/categories", headers=operator)
            return {c["code"] for c in response.json()["categories"]}

        assert "01.01.09" not in await offered()
        published = await client.post("/api/admin/catalogue", json={"content": WITH_BIKES}, headers=admin)
        assert published.status_code == 201
        for _ in range(50):
            if "01.01.09" in await offered():
                break
            await asyncio.sleep(0.1)
        assert "01.01.09" in await offered()  # the operator's category field offers the new leaf
        assert service.ticket_assistant is not None
        assert "01.01.09" in {c.leaf.code for c in service.ticket_assistant.catalogue.leaves()}
