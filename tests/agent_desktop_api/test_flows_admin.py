"""The flow admin API: admin role only; validate/publish/rollback/history with the CLI's error list."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from agent_desktop_api.app import create_app
from agent_desktop_api.auth import AuthService
from config.database import DatabaseSettings, create_engine
from ivr_flows.catalog import AnyPromptCatalog
from ivr_flows.registry import FlowRegistry
from ivr_flows.service import FlowService
from ivr_flows.store import FlowStore
from ivr_flows.validate import ValidationContext

FIXTURES = Path(__file__).resolve().parents[1] / "ivr_flows" / "fixtures"
GOOD = (FIXTURES / "good.yaml").read_text()
GOOD_V2 = GOOD.replace("name: Test line", "name: Test line v2")


class Env:
    def __init__(self, tmp_path: Path) -> None:
        engine = create_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'db.sqlite'}"))
        self.auth = AuthService(engine, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        self.store = FlowStore(engine)
        self.registry = FlowRegistry(self.store)
        context = lambda: ValidationContext(prompts=AnyPromptCatalog())  # noqa: E731
        self.flows = FlowService(self.store, context, on_change=self.registry.refresh)
        self.client = TestClient(create_app(auth_service=self.auth, flow_service=self.flows))
        self.auth.add_user("ann", "admin", "pw")
        self.auth.add_user("olga", "operator", "pw")

    def headers(self, name: str) -> dict[str, str]:
        response = self.client.post("/api/auth/login", json={"username": name, "password": "pw"})
        return {"Authorization": f"Bearer {response.json()['token']}"}


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


ROUTES = [
    ("get", "/api/flows", None),
    ("get", "/api/flows/9999", None),
    ("get", "/api/flows/9999/history", None),
    ("post", "/api/flows/validate", {"content": GOOD}),
    ("post", "/api/flows/publish", {"content": GOOD}),
    ("post", "/api/flows/9999/rollback", {}),
]


@pytest.mark.parametrize(("method", "url", "body"), ROUTES)
def test_admin_only(env: Env, method: str, url: str, body: object) -> None:
    assert env.client.request(method, url, json=body).status_code == 401
    bad = {"Authorization": "Bearer forged"}
    assert env.client.request(method, url, json=body, headers=bad).status_code == 401
    assert env.client.request(method, url, json=body, headers=env.headers("olga")).status_code == 403


def test_publish_get_history_rollback(env: Env) -> None:
    admin = env.headers("ann")
    response = env.client.post("/api/flows/publish", json={"content": GOOD, "comment": "first"}, headers=admin)
    assert response.status_code == 201, response.text
    assert response.json()["version"] == 1 and response.json()["author"] == "ann" and response.json()["created"]
    assert env.registry.get("9999").version == 1  # type: ignore[union-attr]  # refreshed at once

    env.client.post("/api/flows/publish", json={"content": GOOD_V2, "file": "v2.yaml"}, headers=admin)
    listing = env.client.get("/api/flows", headers=admin).json()
    assert [(f["number"], f["version"], f["source"]) for f in listing] == [("9999", 2, "v2.yaml")]

    active = env.client.get("/api/flows/9999", headers=admin).json()
    assert active["version"] == 2 and active["content"] == GOOD_V2
    old = env.client.get("/api/flows/9999", params={"version": 1}, headers=admin).json()
    assert old["content"] == GOOD
    assert env.client.get("/api/flows/9999", params={"version": 9}, headers=admin).status_code == 404
    assert env.client.get("/api/flows/1111", headers=admin).status_code == 404

    response = env.client.post("/api/flows/9999/rollback", json={"comment": "oops"}, headers=admin)
    assert response.status_code == 200, response.text
    assert (response.json()["version"], response.json()["restored_from"]) == (3, 1)
    assert env.registry.get("9999").flow.name == "Test line"  # type: ignore[union-attr]

    history = env.client.get("/api/flows/9999/history", headers=admin).json()
    assert [(h["version"], h["author"], h["restored_from"]) for h in history] == [
        (3, "ann", 1),
        (2, "ann", None),
        (1, "ann", None),
    ]
    response = env.client.post("/api/flows/9999/rollback", json={"to": 3}, headers=admin)
    assert response.status_code == 409
    assert env.client.post("/api/flows/1111/rollback", json={}, headers=admin).status_code == 404


def test_bad_flow_is_422_with_locations(env: Env) -> None:
    admin = env.headers("ann")
    env.client.post("/api/flows/publish", json={"content": GOOD}, headers=admin)
    bad = GOOD.replace('"2": queue', '"2": queue\n      "1": bye').replace("next: menu", "next: nowhere")
    for url in ("/api/flows/validate", "/api/flows/publish"):
        response = env.client.post(url, json={"content": bad, "file": "12345.yaml"}, headers=admin)
        assert response.status_code == 422, response.text
        errors = response.json()["detail"]["errors"]
        located = {(e["file"], e["line"], e["step"], e["message"]) for e in errors}
        assert ("12345.yaml", 10, "hello", "unknown target step 'nowhere'") in located
        assert ("12345.yaml", 17, "menu", "digit '1' used twice in menu (first at line 15)") in located
    assert env.store.active("9999").version == 1  # type: ignore[union-attr]


def test_validate_ok(env: Env) -> None:
    response = env.client.post("/api/flows/validate", json={"content": GOOD}, headers=env.headers("ann"))
    assert response.status_code == 200
    assert response.json() == {"ok": True, "number": "9999", "warnings": []}
