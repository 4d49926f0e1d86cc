"""Callers promised a call back, at the desk: listed from the voice side's requests (its own store, as the gateway
records them), taken by one operator at a time, finished with how it went (no answer keeps them on the list)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.agent_desktop_api.desktop_support import FakeService, bearer, build_app, make_engine, on_loop, token
from tests.agent_desktop_api.test_desktop_api import Env
from voice.callbacks import CallbackStore


class CallbackEnv(Env):
    def promise(self, call_id: str, number: str, waited_s: float = 300.0) -> None:
        """The voice side recorded a callback (the caller waited the queue's longest)."""
        store = CallbackStore(self.desktop.service.engine)
        on_loop(self.client, store.record, call_id, number, "zh", "zh", waited_s)

    def listed(self, who: str | None = None) -> list[dict[str, object]]:
        answer = self.client.get("/api/callbacks", headers=bearer(who or self.op))
        assert answer.status_code == 200, answer.text
        callbacks: list[dict[str, object]] = answer.json()["callbacks"]
        return callbacks


@pytest.fixture
def env(tmp_path: Path) -> Iterator[CallbackEnv]:
    service = FakeService(make_engine(tmp_path / "db.sqlite"))
    assert service.gateway is not None
    app, desktop, auth = build_app(service)
    with TestClient(app) as client:
        yield CallbackEnv(app, client, desktop, auth, service.gateway)


def test_a_promised_callback_is_taken_by_one_operator_and_leaves_the_list_once_reached(env: CallbackEnv) -> None:
    env.promise("c1", "13800138001", waited_s=312.4)
    env.promise("c2", "13800138002")
    first, second = env.listed()
    assert (first["caller_number"], first["waited_s"], first["claimed_by"]) == ("13800138001", 312.4, None)
    assert second["caller_number"] == "13800138002"  # the longest waiting first

    mine = env.client.post(f"/api/callbacks/{first['id']}/claim", headers=bearer(env.other))
    assert mine.status_code == 200 and mine.json()["claimed_by"] == "op1003"
    theirs = env.client.post(f"/api/callbacks/{first['id']}/claim", headers=bearer(env.op))
    assert theirs.status_code == 409 and theirs.json()["detail"] == "op1003 is calling them back"
    not_mine = env.client.post(
        f"/api/callbacks/{first['id']}/done", headers=bearer(env.op), json={"outcome": "reached"}
    )
    assert not_mine.status_code == 409

    nobody = env.client.post(
        f"/api/callbacks/{first['id']}/done", headers=bearer(env.other), json={"outcome": "no_answer"}
    )
    assert nobody.status_code == 200
    again = env.listed()[0]
    assert (again["caller_number"], again["attempts"], again["outcome"], again["claimed_by"]) == (
        "13800138001", 1, "no_answer", None,
    )  # fmt: skip

    assert env.client.post(f"/api/callbacks/{first['id']}/claim", headers=bearer(env.op)).status_code == 200
    reached = env.client.post(f"/api/callbacks/{first['id']}/done", headers=bearer(env.op), json={"outcome": "reached"})
    assert reached.status_code == 200 and reached.json()["done_at"] is not None
    assert [c["caller_number"] for c in env.listed()] == ["13800138002"]
    late = env.client.post(f"/api/callbacks/{first['id']}/claim", headers=bearer(env.other))
    assert late.status_code == 409 and late.json()["detail"] == "already called back by op1002 (reached)"


def test_bad_requests_get_clear_errors_and_supervisors_see_the_list(env: CallbackEnv) -> None:
    env.promise("c1", "13800138001")
    [callback] = env.listed(token(env.client, env.auth, "sue", "supervisor"))
    assert env.client.post("/api/callbacks/999/claim", headers=bearer(env.op)).status_code == 404
    wrong = env.client.post(f"/api/callbacks/{callback['id']}/done", headers=bearer(env.op), json={"outcome": "later"})
    assert wrong.status_code == 422
    unclaimed = env.client.post(
        f"/api/callbacks/{callback['id']}/done", headers=bearer(env.op), json={"outcome": "reached"}
    )
    assert unclaimed.status_code == 409 and unclaimed.json()["detail"] == "take it first"
    assert env.client.post(f"/api/callbacks/{callback['id']}/claim", headers=bearer(env.admin)).status_code == 403
    assert env.client.post("/api/callbacks/0/claim", headers=bearer(env.op)).status_code == 422
