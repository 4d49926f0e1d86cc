"""Users, login and bearer tokens; role checks on a throwaway route."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from fastapi import Depends
from fastapi.testclient import TestClient

from agent_desktop_api.app import create_app
from agent_desktop_api.auth import AuthService, User, UserExists, require_role, token_hash
from agent_desktop_api.cli import users_group
from agent_desktop_api.settings import AuthSettings
from config.database import DatabaseSettings, create_engine

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # tests only: argon2's defaults take ~50 ms


@pytest.fixture
def auth(tmp_path: Path) -> AuthService:
    return AuthService(create_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'db.sqlite'}")), hasher=FAST)


@pytest.fixture
def client(auth: AuthService) -> TestClient:
    app = create_app(auth_service=auth)

    @app.get("/admin-only")
    def admin_only(user: User = Depends(require_role("admin"))) -> dict[str, str]:  # noqa: B008
        return {"hello": user.name}

    return TestClient(app)


def login(client: TestClient, name: str, password: str) -> str:
    response = client.post("/api/auth/login", json={"username": name, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def test_passwords_are_argon2_hashed(auth: AuthService) -> None:
    auth.add_user("ann", "admin", "s3cret")
    with auth.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT password_hash FROM users").scalar_one()
    assert stored.startswith("$argon2id$") and "s3cret" not in stored
    with pytest.raises(UserExists):
        auth.add_user("ann", "operator", "x")


def test_login_and_roles(auth: AuthService, client: TestClient) -> None:
    auth.add_user("ann", "admin", "s3cret")
    auth.add_user("olga", "operator", "pw")
    assert client.post("/api/auth/login", json={"username": "ann", "password": "wrong"}).status_code == 401
    assert client.post("/api/auth/login", json={"username": "nobody", "password": "x"}).status_code == 401

    assert client.get("/admin-only").status_code == 401
    assert client.get("/admin-only", headers={"Authorization": "Bearer nonsense"}).status_code == 401
    assert client.get("/admin-only", headers={"Authorization": "Basic abc"}).status_code == 401

    operator = login(client, "olga", "pw")
    assert client.get("/admin-only", headers={"Authorization": f"Bearer {operator}"}).status_code == 403

    admin = login(client, "ann", "s3cret")
    response = client.get("/admin-only", headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == 200 and response.json() == {"hello": "ann"}
    assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {admin}"}).json()["role"] == "admin"

    assert client.post("/api/auth/logout", headers={"Authorization": f"Bearer {admin}"}).status_code == 204
    assert client.get("/admin-only", headers={"Authorization": f"Bearer {admin}"}).status_code == 401


def test_tokens_are_stored_hashed_and_expire(tmp_path: Path) -> None:
    now = [datetime(2026, 11, 1, tzinfo=UTC)]
    engine = create_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    auth = AuthService(engine, hasher=FAST, token_ttl_s=60, clock=lambda: now[0])
    auth.add_user("ann", "admin", "pw")
    issued = auth.login("ann", "pw")
    assert issued is not None
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT token_hash FROM auth_tokens").scalar_one()
    assert stored != issued.token and len(stored) == 64
    assert auth.authenticate(issued.token) == issued.user
    now[0] += timedelta(seconds=61)
    assert auth.authenticate(issued.token) is None


def test_new_password_ends_sessions(auth: AuthService) -> None:
    auth.add_user("ann", "admin", "old")
    issued = auth.login("ann", "old")
    assert issued is not None
    auth.set_password("ann", "new")
    assert auth.authenticate(issued.token) is None
    assert auth.login("ann", "old") is None and auth.login("ann", "new") is not None


def test_users_cli(auth: AuthService) -> None:
    class Host:
        def auth_service(self) -> AuthService:
            return auth

    runner = CliRunner()
    result = runner.invoke(
        users_group, ["add", "ann", "--role", "admin", "--password-stdin"], obj=Host(), input="s3cret\n"
    )
    assert result.exit_code == 0, result.output
    assert "added ann (admin)" in result.output
    assert auth.login("ann", "s3cret") is not None

    result = runner.invoke(users_group, ["add", "ann", "--password-stdin"], obj=Host(), input="x\n")
    assert result.exit_code == 1 and "already exists" in result.output

    result = runner.invoke(users_group, ["add", "olga"], obj=Host(), input="pw\npw\n")  # prompted twice
    assert result.exit_code == 0 and "added olga (operator)" in result.output
    assert runner.invoke(users_group, ["list"], obj=Host()).output.splitlines() == ["ann\tadmin", "olga\toperator"]


def test_users_cli_database_option(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    result = CliRunner().invoke(
        users_group, ["--database", url, "add", "root", "--role", "admin", "--password-stdin"], input="pw\n"
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli.sqlite").exists()


def limited_client(tmp_path: Path, **limits: str) -> tuple[AuthService, TestClient]:
    engine = create_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'limited.sqlite'}"))
    service = AuthService(engine, hasher=FAST, settings=AuthSettings(**limits))  # type: ignore[arg-type]
    return service, TestClient(create_app(auth_service=service))


def test_login_attempts_per_address_are_limited(tmp_path: Path) -> None:
    auth, client = limited_client(tmp_path, login_per_address="5/minute")
    auth.add_user("ann", "admin", "pw")
    codes = [client.post("/api/auth/login", json={"username": f"u{i}", "password": "x"}).status_code for i in range(5)]
    assert codes == [401] * 5
    refused = client.post("/api/auth/login", json={"username": "ann", "password": "pw"})
    assert refused.status_code == 429 and "address" in refused.json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_failed_logins_lock_the_user_name_not_the_others(tmp_path: Path) -> None:
    auth, client = limited_client(tmp_path, login_failures_per_user="3/minute")
    auth.add_user("ann", "admin", "pw")
    auth.add_user("olga", "operator", "pw")
    for _ in range(3):
        assert client.post("/api/auth/login", json={"username": "ann", "password": "guess"}).status_code == 401
    locked = client.post("/api/auth/login", json={"username": "ann", "password": "pw"})
    assert locked.status_code == 429 and "user" in locked.json()["detail"]
    assert login(client, "olga", "pw")  # another user is not affected


def test_a_database_that_is_down_answers_503_not_500(tmp_path: Path) -> None:
    auth, client = limited_client(tmp_path)
    auth.add_user("ann", "admin", "pw")
    token = login(client, "ann", "pw")
    with auth.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE auth_tokens")  # what a lost or replaced database looks like to queries
    down = client.post("/api/auth/login", json={"username": "ann", "password": "pw"})
    assert down.status_code == 503 and "database unavailable" in down.json()["detail"]
    assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 503


def test_still_valid_drops_logged_out_changed_and_disabled_sessions(auth: AuthService) -> None:
    for name in ("olga", "oleg", "otto", "ida"):
        auth.add_user(name, "operator", "pw")
    issued = {name: auth.login(name, "pw") for name in ("olga", "oleg", "otto", "ida")}
    hashes = {name: token_hash(t.token) for name, t in issued.items() if t is not None}
    assert auth.still_valid(hashes.values()) == set(hashes.values())
    auth.logout(issued["olga"].token)  # type: ignore[union-attr]
    auth.set_password("oleg", "new")
    auth.set_disabled("otto", True)
    assert auth.still_valid(hashes.values()) == {hashes["ida"]}
    assert auth.login("otto", "pw") is None
    auth.set_disabled("otto", False)
    assert auth.login("otto", "pw") is not None


def test_oversized_bodies_are_refused_before_they_are_read(client: TestClient) -> None:
    huge = b'{"username": "ann", "password": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    declared = client.post("/api/auth/login", content=huge, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "request body over" in declared.json()["detail"]

    def chunks():  # type: ignore[no-untyped-def]  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"x" * 100_000

    streamed = client.post("/api/auth/login", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert client.post("/api/auth/login", json={"username": "nobody", "password": "x"}).status_code == 401


def test_users_add_warns_about_an_operator_without_a_phone(auth: AuthService) -> None:
    from hotline.settings import load_settings

    class Host:
        def auth_service(self) -> AuthService:
            return auth

        def settings(self) -> object:
            return load_settings()  # the shipped operators: op1001, op1002

    runner = CliRunner()
    known = runner.invoke(users_group, ["add", "op1001", "--password-stdin"], obj=Host(), input="pw\n")
    assert known.exit_code == 0 and "warning" not in known.output
    unknown = runner.invoke(users_group, ["add", "op9", "--password-stdin"], obj=Host(), input="pw\n")
    assert unknown.exit_code == 0 and "added op9 (operator)" in unknown.output
    assert "warning: op9 is not in telephony.operators (op1001, op1002)" in unknown.output
    admin = runner.invoke(users_group, ["add", "ann", "--role", "admin", "--password-stdin"], obj=Host(), input="x\n")
    assert "warning" not in admin.output
    boss = ["add", "sup2001", "--role", "supervisor", "--password-stdin"]  # the shipped supervisor phone
    assert "warning" not in runner.invoke(users_group, boss, obj=Host(), input="x\n").output
    phoneless = runner.invoke(
        users_group, ["add", "sue", "--role", "supervisor", "--password-stdin"], obj=Host(), input="x\n"
    )
    assert "warning: sue is not in telephony.supervisors (sup2001): listen, whisper and barge" in phoneless.output
