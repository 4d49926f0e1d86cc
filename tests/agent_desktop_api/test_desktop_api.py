"""The desktop REST routes and the event WebSocket against a stand-in gateway (real EventBus, real OperatorPool)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from agent_desktop_api.auth import AuthService
from agent_desktop_api.desktop import Desktop
from agent_desktop_api.event_tables import desktop_events
from tests.agent_desktop_api.desktop_support import (
    FakeGateway,
    FakeService,
    bearer,
    build_app,
    make_engine,
    on_loop,
    settle,
    token,
)
from voice.operators import Presence


class Env:
    def __init__(
        self, app: FastAPI, client: TestClient, desktop: Desktop, auth: AuthService, gateway: FakeGateway
    ) -> None:
        self.desktop_app, self.client, self.desktop, self.auth, self.gateway = app, client, desktop, auth, gateway
        self.op = token(client, auth, "op1002")
        self.other = token(client, auth, "op1003")
        self.admin = token(client, auth, "ann", "admin")

    def run(self, func: Any, *args: Any) -> None:
        on_loop(self.client, func, *args)
        settle(self.client, self.desktop)

    def call(self, call_id: str = "c1", operator_id: str = "op1002", answered: bool = True) -> None:
        self.run(self.gateway.offer, call_id, operator_id)
        if answered:
            self.run(self.gateway.answer, call_id, operator_id)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    service = FakeService(make_engine(tmp_path / "db.sqlite"))
    assert service.gateway is not None
    app, desktop, auth = build_app(service)
    with TestClient(app) as client:
        yield Env(app, client, desktop, auth, service.gateway)


# ---- every route and the socket refuse missing, wrong and wrong-role tokens ----

ROLE_ONLY = {  # routes one role may not use at all
    ("PUT", "/api/me/presence"): "admin",
    ("GET", "/api/calls/current"): "admin",
    ("GET", "/api/admin/operators"): "operator",
    ("POST", "/api/callbacks/{callback_id}/claim"): "admin",
    ("POST", "/api/callbacks/{callback_id}/done"): "admin",
}
PUBLIC = {("POST", "/api/auth/login")}
BODIES = {
    "/api/me/presence": {"presence": "away"},
    "/api/calls/{call_id}/transfer": {"target": "op1001"},
    "/api/calls/{call_id}/interpreter": {"language": "ug"},
    "/api/calls/{call_id}/address": {"segment_id": "s1", "district": "海淀区", "source": "confirmed"},
    "/api/callbacks/{callback_id}/done": {"outcome": "reached"},
}


def _routes(env: Env) -> list[tuple[str, str]]:
    """Every HTTP route of the app, as its OpenAPI description lists them."""
    spec = env.client.get("/api/openapi.json").json()
    found = [(method.upper(), path) for path, operations in spec["paths"].items() for method in operations]
    return [route for route in found if route not in PUBLIC]


def test_every_route_refuses_missing_and_wrong_tokens_and_wrong_roles(env: Env) -> None:
    routes = _routes(env)
    assert len(routes) >= 11
    for method, path in routes:
        url = re.sub(r"\{[^}]+\}", "c1", path)
        body = BODIES.get(path)
        for headers in ({}, bearer("not-a-token"), {"Authorization": "Basic abc"}):
            response = env.client.request(method, url, headers=headers, json=body)
            assert response.status_code == 401, (method, path, headers, response.text)
        forbidden = ROLE_ONLY.get((method, path))
        if forbidden is not None:
            response = env.client.request(
                method, url, headers=bearer(env.op if forbidden == "operator" else env.admin), json=body
            )
            assert response.status_code == 403, (method, path)


@pytest.mark.parametrize(("who", "code"), [(None, 4401), ("bad", 4401), ("admin", 4403)])
def test_the_socket_refuses_missing_wrong_and_wrong_role_tokens(env: Env, who: str | None, code: int) -> None:
    query = {None: "", "bad": "?token=nope", "admin": f"?token={env.admin}"}[who]
    with env.client.websocket_connect(f"/api/events{query}") as ws, pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_text()
    assert closed.value.code == code


def test_a_logged_out_token_is_refused_by_the_socket(env: Env) -> None:
    assert env.client.post("/api/auth/logout", headers=bearer(env.other)).status_code == 204
    with (
        env.client.websocket_connect(f"/api/events?token={env.other}") as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_text()
    assert closed.value.code == 4401


@pytest.mark.parametrize("how", ["logout", "passwd", "disable"])
def test_an_open_socket_closes_within_a_second_when_the_session_ends(env: Env, how: str) -> None:
    with env.client.websocket_connect(f"/api/events?token={env.op}") as ws:
        env.run(env.gateway.offer, "c1", "op1002")
        assert ws.receive_json()["type"] == "call.offered"
        started = time.monotonic()
        if how == "logout":
            assert env.client.post("/api/auth/logout", headers=bearer(env.op)).status_code == 204
        elif how == "passwd":
            env.auth.set_password("op1002", "changed")
        else:
            env.auth.set_disabled("op1002", True)
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                message = ws.receive_json()
                assert message["type"] == "ping", message
        assert closed.value.code == 4401
        assert time.monotonic() - started < 1.5
    assert env.desktop.hub.count("op1002") == 0  # no socket of the ended session is left to get call messages


def test_hostile_client_frames_neither_crash_nor_grow_the_socket(env: Env) -> None:
    env.call("c1")
    with env.client.websocket_connect(f"/api/events?token={env.op}&after=2") as ws:
        ws.send_text("[" * 1000 + "]" * 1000)  # too deep to parse: ignored, the socket stays
        ws.send_text("not json")
        for _ in range(5000):  # a resume storm: one replay at a time, not 5000 queued
            ws.send_json({"type": "resume", "after": 0})
        first = ws.receive_json()
        assert (first["seq"], first["type"]) == (1, "call.offered")
        [connection] = env.desktop.hub.connections()
        assert connection.queue.qsize() <= 2
        ws.send_text("x" * 5000)
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_json()
    assert closed.value.code == 1009


# ---- me and presence ----


def test_me_and_presence_reach_the_pool(env: Env) -> None:
    me = env.client.get("/api/me", headers=bearer(env.op)).json()
    assert me == {
        "user": "op1002",
        "role": "operator",
        "operator_id": "op1002",
        "presence": "available",
        "skills": ["zh"],
        "phone_registered": None,
        "last_seq": 0,
        "epoch": env.desktop.log.epoch,
    }
    assert len(me["epoch"]) == 32
    admin = env.client.get("/api/me", headers=bearer(env.admin)).json()
    assert admin["role"] == "admin" and admin["operator_id"] is None and admin["presence"] is None

    for value in ("away", "wrap_up", "available"):
        response = env.client.put("/api/me/presence", headers=bearer(env.op), json={"presence": value})
        assert response.status_code == 200 and response.json() == {"presence": value}
        assert env.gateway.pool.get("op1002").presence == Presence(value)
    assert env.client.put("/api/me/presence", headers=bearer(env.op), json={"presence": "on_call"}).status_code == 422
    stranger = token(env.client, env.auth, "op9999")  # a user without a phone in telephony.operators
    assert env.client.put("/api/me/presence", headers=bearer(stranger), json={"presence": "away"}).status_code == 409

    # On a call, "available" does not take the operator off it.
    env.call()
    assert env.client.get("/api/me", headers=bearer(env.op)).json()["last_seq"] == 2
    on_loop(env.client, env.gateway.pool.talking, env.gateway.pool.get("op1002"))
    response = env.client.put("/api/me/presence", headers=bearer(env.op), json={"presence": "available"})
    assert response.json() == {"presence": "on_call"}


# ---- current call and transcript ----


def test_current_call_follows_offer_answer_and_end(env: Env) -> None:
    assert env.client.get("/api/calls/current", headers=bearer(env.op)).status_code == 204
    env.call(answered=False)
    offered = env.client.get("/api/calls/current", headers=bearer(env.op)).json()
    assert offered["call_id"] == "c1" and offered["state"] == "offered"
    assert offered["ivr_path"] == ["language:1", "service:1"] and offered["queue"] == "zh"
    assert offered["caller_number"] == "13800138000" and offered["language"] == "zh"
    assert offered["operator_id"] == "op1002" and offered["interpreter"] is False
    assert env.client.get("/api/calls/current", headers=bearer(env.other)).status_code == 204
    env.run(env.gateway.answer, "c1", "op1002")
    assert env.client.get("/api/calls/current", headers=bearer(env.op)).json()["state"] == "talking"
    env.run(env.gateway.end, "c1")
    assert env.client.get("/api/calls/current", headers=bearer(env.op)).status_code == 204


def test_transcript_has_the_finals_in_order_for_the_calls_operator_and_admins(env: Env) -> None:
    env.call()
    env.run(env.gateway.final, "c1", "s1", "我家在海淀区")
    partial = {"segment_id": "s2", "speaker": "operator", "start_ms": 0, "text": "中关"}
    env.run(lambda: env.gateway.bus.emit("transcript.partial", "c1", **partial))
    env.run(env.gateway.final, "c1", "s2", "中关村街道", "operator")
    response = env.client.get("/api/calls/c1/transcript", headers=bearer(env.op))
    assert response.status_code == 200
    segments = response.json()["segments"]
    assert [(s["segment_id"], s["speaker"], s["text"]) for s in segments] == [
        ("s1", "caller", "我家在海淀区"),
        ("s2", "operator", "中关村街道"),
    ]
    assert segments[0]["seq"] < segments[1]["seq"]
    assert env.client.get("/api/calls/c1/transcript", headers=bearer(env.admin)).json()["segments"] == segments
    assert env.client.get("/api/calls/c1/transcript", headers=bearer(env.other)).status_code == 403
    assert env.client.get("/api/calls/nope/transcript", headers=bearer(env.op)).status_code == 404
    env.run(env.gateway.end, "c1")
    assert env.client.get("/api/calls/c1/transcript", headers=bearer(env.op)).status_code == 200  # after the call


# ---- call control ----


def test_call_control_for_the_calls_operator(env: Env) -> None:
    env.call()
    h = bearer(env.op)
    post = env.client.post
    assert post("/api/calls/c1/transfer", headers=h, json={"target": "queue:en"}).json() == {
        "call_id": "c1",
        "action": "transfer",
        "ok": True,
    }
    assert post("/api/calls/c1/interpreter", headers=h, json={"language": "ug"}).status_code == 200
    assert env.client.delete("/api/calls/c1/interpreter", headers=h).status_code == 200
    assert env.gateway.actions == [
        ("transfer", "c1", "queue:en"),
        ("add_interpreter", "c1", "ug"),
        ("drop_interpreter", "c1"),
    ]

    assert post("/api/calls/c1/hangup", headers=bearer(env.other)).status_code == 403
    assert post("/api/calls/zz/hangup", headers=h).status_code == 404
    assert post("/api/calls/c1/transfer", headers=h, json={"target": "bad target!"}).status_code == 422
    env.gateway.refuse = True
    assert post("/api/calls/c1/interpreter", headers=h, json={"language": "ug"}).status_code == 409
    env.gateway.refuse, env.gateway.not_talking = False, True
    assert post("/api/calls/c1/transfer", headers=h, json={"target": "op1001"}).status_code == 409
    env.gateway.not_talking = False

    assert post("/api/calls/c1/hangup", headers=h).status_code == 200
    assert env.gateway.actions[-1] == ("hangup", "c1")
    settle(env.client, env.desktop)
    assert post("/api/calls/c1/hangup", headers=h).status_code == 409  # known, but over
    env.call("c2", "op1003")
    assert post("/api/calls/c2/hangup", headers=bearer(env.admin)).status_code == 200  # a supervisor may


# ---- address confirmation ----


def test_address_confirmation_is_stored_and_reaches_the_operators_stream(env: Env) -> None:
    env.call()
    body = {
        "segment_id": "s1",
        "district": "海淀区",
        "town": "中关村街道",
        "community": "科育社区",
        "lng": 116.31,
        "lat": 39.98,
        "source": "corrected",
    }
    with env.client.websocket_connect(f"/api/events?token={env.op}&after=2") as ws:
        response = env.client.post("/api/calls/c1/address", headers=bearer(env.op), json=body)
        assert response.status_code == 200, response.text
        stored = response.json()
        assert {k: stored[k] for k in body} == body
        assert stored["operator_id"] == "op1002" and stored["confirmed_by"] == "op1002" and stored["id"] >= 1
        event = ws.receive_json()
        assert event["type"] == "address.confirmed" and event["seq"] == 3 and event["call_id"] == "c1"
        assert event["district"] == "海淀区" and event["confirmation_id"] == stored["id"]
    assert env.desktop.confirmations.for_call("c1")[0]["community"] == "科育社区"

    env.run(env.gateway.end, "c1")  # wrap-up: still allowed
    assert env.client.post("/api/calls/c1/address", headers=bearer(env.op), json=body).status_code == 200
    assert env.client.post("/api/calls/c1/address", headers=bearer(env.other), json=body).status_code == 403
    assert env.client.post("/api/calls/zz/address", headers=bearer(env.op), json=body).status_code == 404
    minimal = {"district": "朝阳区", "source": "corrected"}  # typed in by hand: no segment, no point
    assert env.client.post("/api/calls/c1/address", headers=bearer(env.op), json=minimal).json()["town"] is None
    bad = {**body, "lat": 100}
    assert env.client.post("/api/calls/c1/address", headers=bearer(env.op), json=bad).status_code == 422
    for bad in ({**body, "source": "guessed"}, {**body, "district": None}, {**body, "district": ""}):
        assert env.client.post("/api/calls/c1/address", headers=bearer(env.op), json=bad).status_code == 422
    bad = {**body, "extra": 1}
    assert env.client.post("/api/calls/c1/address", headers=bearer(env.op), json=bad).status_code == 422


# ---- admin ----


def test_admin_sees_the_pool_and_the_connected_desktops(env: Env) -> None:
    env.client.put("/api/me/presence", headers=bearer(env.op), json={"presence": "away"})
    with (
        env.client.websocket_connect(f"/api/events?token={env.op}"),
        env.client.websocket_connect(f"/api/events?token={env.op}"),
    ):
        overview = env.client.get("/api/admin/operators", headers=bearer(env.admin)).json()
    by_id = {op["id"]: op for op in overview["operators"]}
    assert by_id["op1002"]["presence"] == "away" and by_id["op1002"]["desktops"] == 2
    assert by_id["op1002"]["phone_registered"] is None  # no registration seen yet (no Asterisk here)
    assert by_id["op1001"]["skills"] == ["en", "zh"] and by_id["op1001"]["desktops"] == 0
    assert [d["operator_id"] for d in overview["desktops"]] == ["op1002", "op1002"]


# ---- the socket delivers live and numbered ----


def test_socket_delivers_the_operators_events_with_increasing_seq(env: Env) -> None:
    with (
        env.client.websocket_connect(f"/api/events?token={env.op}") as mine,
        env.client.websocket_connect(f"/api/events?token={env.other}") as theirs,
    ):
        env.call("c1", "op1002")
        env.call("c2", "op1003")
        env.run(env.gateway.final, "c1", "s1", "你好")
        got = [mine.receive_json() for _ in range(3)]
        assert [(m["type"], m["call_id"], m["seq"]) for m in got] == [
            ("call.offered", "c1", 1),
            ("call.answered", "c1", 2),
            ("transcript.final", "c1", 3),
        ]
        assert [(m["call_id"], m["seq"]) for m in (theirs.receive_json(), theirs.receive_json())] == [
            ("c2", 1),
            ("c2", 2),
        ]
    with env.desktop.log.engine.connect() as conn:
        assert conn.execute(desktop_events.select()).fetchall()  # stored


def test_openapi_describes_every_route_with_typed_bodies(env: Env) -> None:
    spec = env.client.get("/api/openapi.json").json()
    for path, operations in spec["paths"].items():
        if not path.startswith("/api/") or path.startswith(("/api/auth", "/api/flows")):
            continue
        for method, operation in operations.items():
            ok = operation["responses"].get("200") or operation["responses"].get("204")
            assert ok is not None, (method, path)
            if "200" in operation["responses"]:
                content = operation["responses"]["200"]["content"]
                if "application/json" not in content:  # a file: the recording
                    assert set(content) == {"audio/wav"}, (method, path, content)
                    continue
                schema = content["application/json"]["schema"]
                assert "$ref" in schema, (method, path, schema)
            if method in ("put", "post") and path.endswith(("presence", "transfer", "interpreter", "address")):
                assert "$ref" in operation["requestBody"]["content"]["application/json"]["schema"]
