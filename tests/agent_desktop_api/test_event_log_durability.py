"""The event store failing under a connected desk: the SQLite file made read-only (immutable, so root cannot write
either), deleted, or replaced by an older copy, while a call goes on. Asserted as the operator sees it on the
WebSocket and over REST: nothing delivered is missing from the store, seq never goes backwards, and a desk that
numbered from another database is told to resynchronise instead of going blank."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent_desktop_api.auth import AuthService
from agent_desktop_api.desktop import Desktop
from config.database_health import DatabaseMonitor
from tests.agent_desktop_api.desktop_support import (
    FAST,
    FakeGateway,
    FakeService,
    bearer,
    build_app,
    make_engine,
    on_loop,
    settle,
    token,
)

pytestmark = pytest.mark.slow


class Desk:
    def __init__(self, db: Path, client: TestClient, desktop: Desktop, auth: AuthService, gateway: FakeGateway):
        self.db, self.client, self.desktop, self.auth, self.gateway = db, client, desktop, auth, gateway
        self.token = token(client, auth, "op1002")

    def emit(self, func: Any, *args: Any) -> None:
        on_loop(self.client, func, *args)

    def transcript(self, call_id: str = "c1") -> list[str]:
        reply = self.client.get(f"/api/calls/{call_id}/transcript", headers=bearer(self.token))
        assert reply.status_code == 200, reply.text
        return [segment["text"] for segment in reply.json()["segments"]]


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    db = tmp_path / "hotline.db"
    service = FakeService(make_engine(db))
    assert service.gateway is not None
    app, desktop, auth = build_app(service)
    with TestClient(app) as client:
        yield Desk(db, client, desktop, auth, service.gateway)
    _immutable(db, False)


def _files(db: Path) -> list[Path]:
    return [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]


def _immutable(db: Path, on: bool) -> None:
    """The database and its WAL refuse every write (the -shm index stays: SQLite maps it, and a read-only mount
    would not let SQLite open the database for writing at all)."""
    for path in (p for p in _files(db) if not p.name.endswith("-shm")):
        subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True, capture_output=True)


def receive(ws: Any) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = ws.receive_json()
        if message["type"] != "ping":
            return message


def test_a_read_only_database_holds_messages_back_and_delivers_them_all_when_it_returns(desk: Desk) -> None:
    monitor = DatabaseMonitor(desk.desktop.log.engine)
    desk.emit(desk.gateway.offer, "c1", "op1002")
    desk.emit(desk.gateway.answer, "c1", "op1002")
    settle(desk.client, desk.desktop)
    with desk.client.websocket_connect(f"/api/events?token={desk.token}&after=0") as ws:
        assert [receive(ws)["type"] for _ in range(2)] == ["call.offered", "call.answered"]
        desk.emit(desk.gateway.final, "c1", "s1", "我家在海淀区")
        assert receive(ws)["text"] == "我家在海淀区"

        _immutable(desk.db, True)
        try:
            desk.emit(desk.gateway.final, "c1", "s2", "中关村街道")
            desk.emit(desk.gateway.final, "c1", "s3", "路灯坏了")
            status = receive(ws)
            assert (status["type"], status["state"]) == ("stream.status", "waiting_for_database")
            assert "seq" not in status
            assert monitor.check() is False and monitor.problem  # what /readyz reports as "database": false
            down = desk.client.post("/api/auth/login", json={"username": "op1002", "password": "pw"})
            assert down.status_code == 503
        finally:
            _immutable(desk.db, False)
        held = [receive(ws) for _ in range(3)]
        assert [(m["type"], m.get("state")) for m in held] == [
            ("stream.status", "live"),
            ("transcript.final", None),
            ("transcript.final", None),
        ]
        finals = held[1:]
        assert [m["text"] for m in finals] == ["中关村街道", "路灯坏了"]
        assert [m["seq"] for m in finals] == [4, 5]
        assert monitor.check() is True
    assert desk.transcript() == ["我家在海淀区", "中关村街道", "路灯坏了"]  # every line the desk saw is stored


def test_a_deleted_database_never_makes_seq_go_backwards_and_old_desks_resync(desk: Desk) -> None:
    monitor = DatabaseMonitor(desk.desktop.log.engine)
    old_epoch = desk.desktop.log.epoch
    desk.emit(desk.gateway.offer, "c1", "op1002")
    desk.emit(desk.gateway.answer, "c1", "op1002")
    desk.emit(desk.gateway.final, "c1", "s1", "第一句")
    settle(desk.client, desk.desktop)
    with desk.client.websocket_connect(f"/api/events?token={desk.token}&after=0&epoch={old_epoch}") as ws:
        assert [receive(ws)["seq"] for _ in range(3)] == [1, 2, 3]
        for path in _files(desk.db):
            path.unlink()
        assert monitor.check() is True  # noticed the new file: pooled connections to the old one are closed
        desk.emit(desk.gateway.final, "c1", "s2", "第二句")
        after = receive(ws)
        while after["type"] == "stream.status":
            after = receive(ws)
        assert (after["type"], after["text"], after["seq"]) == ("transcript.final", "第二句", 4)  # not seq 1
        assert monitor.check() is True
    new_epoch = desk.desktop.log.epoch
    assert new_epoch != old_epoch and desk.db.exists()
    assert (desk.db.stat().st_mode & 0o077) == 0
    login = desk.client.post("/api/auth/login", json={"username": "op1002", "password": "pw"})
    assert login.status_code == 503  # the users went with the old file: a clear refusal, not a server error
    AuthService(desk.desktop.log.engine, hasher=FAST).add_user("op1002", "operator", "pw")  # `hotline users add`
    desk.token = token(desk.client, desk.auth, "op1002")
    with desk.client.websocket_connect(f"/api/events?token={desk.token}&after=3&epoch={old_epoch}") as ws:
        resync = receive(ws)
        assert resync == {**resync, "type": "resync", "epoch": new_epoch, "last_seq": 4}
        desk.emit(desk.gateway.final, "c1", "s3", "第三句")
        assert (receive(ws)["seq"]) == 5
    me = desk.client.get("/api/me", headers=bearer(desk.token)).json()
    assert (me["epoch"], me["last_seq"]) == (new_epoch, 5)


def test_a_restored_older_copy_after_a_restart_resyncs_a_desk_that_is_ahead(desk: Desk, tmp_path: Path) -> None:
    desk.emit(desk.gateway.offer, "c1", "op1002")
    settle(desk.client, desk.desktop)
    backup = tmp_path / "backup.db"
    with sqlite3.connect(desk.db) as live, sqlite3.connect(backup) as copy:
        live.backup(copy)
    desk.emit(desk.gateway.answer, "c1", "op1002")
    desk.emit(desk.gateway.final, "c1", "s1", "备份之后")
    settle(desk.client, desk.desktop)
    epoch = desk.desktop.log.epoch
    # The gateway restarts on the restored copy (seq 1 stored there, the desk saw 3).
    for path in _files(desk.db):
        path.unlink()
    shutil.copy(backup, desk.db)
    service = FakeService(make_engine(desk.db))
    app, _desktop, auth = build_app(service)
    with TestClient(app) as client:
        fresh = token(client, auth, "op1002")  # the users came back with the copy
        with client.websocket_connect(f"/api/events?token={fresh}&after=3&epoch={epoch}") as ws:
            resync = receive(ws)
            assert (resync["type"], resync["last_seq"]) == ("resync", 1)
            assert service.gateway is not None
            on_loop(client, service.gateway.final, "c1", "s2", "恢复之后")
            message = receive(ws)
            assert (message["seq"], message["text"]) == (2, "恢复之后")
