"""Supervision: the supervisor role sees and acts on every call; the wallboard shows queues, operators and their
calls, today's figures and the calls the alert assistant flagged (a real assistant on the real bus)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assist.alert_assistant import AlertAssistant
from assist.alert_settings import AlertSettings
from tests.agent_desktop_api.desktop_support import (
    FakeService,
    bearer,
    build_app,
    make_engine,
    on_loop,
    settle,
    token,
)
from tests.agent_desktop_api.test_desktop_api import Env


class BoardEnv(Env):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.boss = token(self.client, self.auth, "sue", "supervisor")

    def run(self, func: Any, *args: Any) -> None:
        super().run(func, *args)
        settle(self.client, self.desktop)  # what the alert assistant published after a final
        on_loop(self.client, self.desktop.history.settled)

    def board(self) -> dict[str, Any]:
        answer = self.client.get("/api/supervisor/wallboard", headers=bearer(self.boss))
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


@pytest.fixture
def env(tmp_path: Path) -> Iterator[BoardEnv]:
    service = FakeService(make_engine(tmp_path / "db.sqlite"))
    assert service.gateway is not None
    app, desktop, auth = build_app(service)
    with TestClient(app) as client:
        assistant = AlertAssistant(service.gateway.bus, AlertSettings().words)
        on_loop(client, assistant.start)
        yield BoardEnv(app, client, desktop, auth, service.gateway)
        on_loop(client, assistant.stop)


def test_the_wallboard_shows_queues_operators_today_and_flagged_calls(env: BoardEnv) -> None:
    env.gateway.waiting = {"zh": (3, 42.5), "en": (1, 5.0)}
    env.call("c1", "op1002")
    env.run(env.gateway.final, "c1", "s1", "我家厨房里燃气泄漏了，味道很大")
    env.run(env.gateway.final, "c1", "s2", "燃气泄漏，快来人")  # the same word again: no second alert
    env.call("c2", "op1003", answered=False)
    env.run(env.gateway.end, "c2", "caller_hangup")  # rang, the caller gave up: abandoned

    board = env.board()
    assert board["queues"] == [
        {"queue": "en", "waiting": 1, "longest_wait_s": 5.0},
        {"queue": "zh", "waiting": 3, "longest_wait_s": 42.5},
    ]
    operators = {op["id"]: op for op in board["operators"]}
    assert operators["op1002"]["call_id"] == "c1" and operators["op1002"]["caller_number"] == "13800138000"
    assert operators["op1002"]["call_s"] == 3.0 and operators["op1001"]["call_id"] is None
    today = board["today"]
    assert (today["calls"], today["queued"], today["answered"], today["abandoned"]) == (1, 1, 0, 1)
    assert today["service_level"] == 0.0  # one abandoned, none answered yet (c1 is still talking)
    [alert] = board["alerts"]
    assert alert["call_id"] == "c1" and alert["operator_id"] == "op1002" and alert["words"] == ["燃气泄漏"]
    assert "厨房" in alert["text"] and alert["ended_at"] is None

    env.run(env.gateway.end, "c1")  # answered with waited_s 1.5: within the service level's 20 s
    board = env.board()
    assert board["today"]["answered"] == 1 and board["today"]["service_level"] == 0.5
    assert board["alerts"][0]["ended_at"] is not None  # still shown for the hour after


def test_a_supervisor_sees_and_ends_any_call_but_administers_nothing(env: BoardEnv) -> None:
    env.call("c1", "op1002")
    env.run(env.gateway.final, "c1", "s1", "楼下路灯坏了")
    boss = bearer(env.boss)
    live = env.client.get("/api/supervisor/calls", headers=boss)
    assert [(c["call_id"], c["operator_id"]) for c in live.json()["calls"]] == [("c1", "op1002")]
    assert env.client.get("/api/supervisor/calls", headers=bearer(env.op)).status_code == 403
    assert env.client.get("/api/calls/c1/transcript", headers=boss).status_code == 200
    assert env.client.get("/api/calls/c1/ticket", headers=boss).status_code == 200
    assert env.client.post("/api/calls/c1/hangup", headers=boss).status_code == 200
    assert env.gateway.actions[-1] == ("hangup", "c1")
    on_loop(env.client, env.desktop.history.settled)
    assert [c["call_id"] for c in env.client.get("/api/history", headers=boss).json()["calls"]] == ["c1"]
    assert env.client.get("/api/admin/operators", headers=boss).status_code == 403
    assert env.client.get("/api/admin/dispatch", headers=boss).status_code == 403
    assert env.client.get("/api/supervisor/wallboard", headers=bearer(env.op)).status_code == 403
