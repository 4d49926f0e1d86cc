"""Hostile flow files through the CLI (its own process, time and peak memory measured by the OS) and the admin
API: each is refused with a `file:line` error, quickly and in bounded memory, and the gateway keeps working."""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from agent_desktop_api.app import create_app
from agent_desktop_api.auth import AuthService
from config.database import DatabaseSettings, create_engine
from ivr_flows.catalog import AnyPromptCatalog
from ivr_flows.loader import load_yaml
from ivr_flows.service import FlowService
from ivr_flows.store import FlowStore
from ivr_flows.validate import ValidationContext
from tests.ivr_flows.bombs import BOMBS

HOTLINE = Path(sys.executable).with_name("hotline")
MEASURE = (
    "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "print(p.returncode); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(p.stdout + p.stderr)"
)


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_loader_refuses_with_a_location(name: str) -> None:
    loaded = load_yaml(BOMBS[name], "bomb.yaml")
    assert loaded.data is None
    [error] = loaded.errors
    assert error.file == "bomb.yaml" and error.line >= 1
    assert str(error).startswith("bomb.yaml:")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BOMBS))
def test_cli_refuses_hostile_files_fast_and_small(name: str, tmp_path: Path) -> None:
    bomb = tmp_path / f"{name}.yaml"
    bomb.write_text(BOMBS[name])
    env = {"HOTLINE_DATABASE__URL": f"sqlite:///{tmp_path / 'db.sqlite'}", "PATH": "/usr/bin:/bin"}
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-c", MEASURE, str(HOTLINE), "flows", "validate", str(bomb)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    elapsed = time.monotonic() - started
    code, max_rss_kb, output = run.stdout.split("\n", 2)
    assert int(code) == 1, output
    assert f"{bomb}:" in output and "Traceback" not in output, output
    # The whole CLI process (Python, SQLAlchemy, pydantic): about 70 MB and 1-2 s on a small machine.
    assert int(max_rss_kb) < 200_000, max_rss_kb
    assert elapsed < 20, elapsed


@pytest.fixture
def admin_api(tmp_path: Path) -> tuple[TestClient, dict[str, str]]:
    engine = create_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    auth = AuthService(engine, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    flows = FlowService(FlowStore(engine), lambda: ValidationContext(prompts=AnyPromptCatalog()))
    client = TestClient(create_app(auth_service=auth, flow_service=flows))
    auth.add_user("ann", "admin", "pw")
    token = client.post("/api/auth/login", json={"username": "ann", "password": "pw"}).json()["token"]
    return client, {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_admin_api_refuses_hostile_flows_in_bounded_memory(
    name: str, admin_api: tuple[TestClient, dict[str, str]]
) -> None:
    client, admin = admin_api
    for url in ("/api/flows/validate", "/api/flows/publish"):
        tracemalloc.start()
        try:
            response = client.post(url, json={"content": BOMBS[name], "file": "bomb.yaml"}, headers=admin)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert response.status_code == 422, response.text[:300]
        if name == "oversized":  # refused by the request model before any YAML is read
            assert "at most" in response.text
        else:
            [error] = response.json()["detail"]["errors"]
            assert error["file"] == "bomb.yaml" and error["line"] >= 1
        assert peak < 100 * 1024 * 1024, peak
    assert client.get("/api/flows", headers=admin).status_code == 200  # still serving
