"""The desktop event log: per-operator streams and seq, storage and resume (also across a restart), retention,
and the WebSocket's exactly-once replay."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from starlette.websockets import WebSocketDisconnect

from agent_desktop_api import desktop_stream
from agent_desktop_api.auth import AuthService
from agent_desktop_api.desktop_runtime import Desktop
from agent_desktop_api.desktop_stream import Connection, _Resume
from agent_desktop_api.event_log import UNROUTED, EventLog, Message
from agent_desktop_api.settings import DesktopSettings
from events.bus import CallEvent
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

# ---- routing and numbering (EventLog alone) ----


# What the contract requires of a segment, where a test has nothing to say about it.
SEGMENT = {"speaker": "caller", "start_ms": 0}
REQUIRED: dict[str, dict[str, Any]] = {
    "address.candidates": {"text": ""},
    "transcript.partial": {**SEGMENT, "text": ""},
    "transcript.final": {**SEGMENT, "end_ms": 0, "confidence": 1.0},
}


def ev(type_: str, call_id: str, **data: Any) -> CallEvent:
    return CallEvent.loose(type_, call_id, {**REQUIRED.get(type_, {}), **data})


async def test_streams_follow_the_call_and_seq_increases_per_operator(tmp_path: Path) -> None:
    log = EventLog(make_engine(tmp_path / "db.sqlite"))
    out = await log.ingest(
        [
            ev("call.offered", "c1", operator_id="op1", queue="zh", ivr_path=["1"]),
            ev("call.offered", "c2", operator_id="op2"),
            ev("call.answered", "c1", operator_id="op1"),
            ev("transcript.partial", "c1", segment_id="s1", text="我"),
            ev("transcript.final", "c1", segment_id="s1", text="我家"),
            ev("address.candidates", "c2", segment_id="s9", candidates=[]),
            ev("call.transferred", "c1", target="op2", from_operator="op1", operator_id="op2"),
            ev("transcript.final", "c1", segment_id="s2", text="after transfer"),
            ev("call.ended", "c1", reason="completed"),
            ev("call.ended", "c9", reason="caller_hangup"),  # never reached an operator
        ]
    )
    streams: dict[str, list[tuple[int, str, str]]] = {}
    for m in out:
        streams.setdefault(m.operator_id, []).append((m.seq, m.type, m.call_id))
    assert streams["op1"] == [
        (1, "call.offered", "c1"),
        (2, "call.answered", "c1"),
        (3, "transcript.partial", "c1"),
        (4, "transcript.final", "c1"),
        (5, "call.transferred", "c1"),
    ]
    assert streams["op2"] == [
        (1, "call.offered", "c2"),
        (2, "address.candidates", "c2"),
        (3, "call.transferred", "c1"),
        (4, "transcript.final", "c1"),
        (5, "call.ended", "c1"),
    ]
    assert streams[UNROUTED] == [(1, "call.ended", "c9")]
    body = json.loads(out[0].text)
    assert body["type"] == "call.offered" and body["call_id"] == "c1" and body["seq"] == 1
    assert datetime.fromisoformat(body["ts"]).utcoffset() == timedelta(0)
    assert body["queue"] == "zh" and body["ivr_path"] == ["1"]
    assert log.current_call("op2") is not None and log.current_call("op2").call_id == "c2"  # type: ignore[union-attr]
    assert log.current_call("op1") is None


async def test_an_assistants_late_answer_still_reaches_the_desk_that_had_the_call(tmp_path: Path) -> None:
    # The map assistant reads the bus on its own: its answer about the last line may follow call.ended.
    log = EventLog(make_engine(tmp_path / "db.sqlite"))
    out = await log.ingest(
        [
            ev("call.answered", "c1", operator_id="op1"),
            ev("transcript.final", "c1", segment_id="s1", text="海淀区中关村街道"),
            ev("call.ended", "c1", reason="caller_hangup"),
            ev("address.candidates", "c1", segment_id="s1", candidates=[]),
        ]
    )
    assert [(m.operator_id, m.seq, m.type) for m in out] == [
        ("op1", 1, "call.answered"),
        ("op1", 2, "transcript.final"),
        ("op1", 3, "call.ended"),
        ("op1", 4, "address.candidates"),
    ]
    assert log.current_call("op1") is None  # the late answer does not reopen the call


async def test_an_offer_moving_to_another_operator_clears_the_first_desktop(tmp_path: Path) -> None:
    log = EventLog(make_engine(tmp_path / "db.sqlite"))
    out = await log.ingest([ev("call.offered", "c1", operator_id="op1"), ev("call.offered", "c1", operator_id="op2")])
    assert [(m.operator_id, m.seq, m.type) for m in out] == [
        ("op1", 1, "call.offered"),
        ("op1", 2, "call.ended"),
        ("op2", 1, "call.offered"),
    ]
    assert json.loads(out[1].text)["reason"] == "not_answered"


async def test_seq_and_open_calls_survive_a_restart_and_pruning(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "db.sqlite")
    now = [datetime.now(UTC)]
    first = EventLog(engine, clock=lambda: now[0])
    await first.ingest([ev("call.offered", "c1", operator_id="op1"), ev("call.answered", "c1", operator_id="op1")])
    second = EventLog(engine, DesktopSettings(retention_days=1), clock=lambda: now[0])
    out = await second.ingest([ev("transcript.final", "c1", segment_id="s1", text="x")])
    assert [(m.operator_id, m.seq) for m in out] == [("op1", 3)]  # the restarted log knows whose call c1 is
    assert [seq for seq, _ in second.read("op1", 0)] == [1, 2, 3]
    assert [seq for seq, _ in second.read("op1", 2)] == [3]
    # Partials go after an hour (finals supersede them), the rest stays for retention_days.
    await second.ingest([ev("transcript.partial", "c1", segment_id="s2", text="y")])
    now[0] += timedelta(hours=2)
    assert second.prune(now[0] - timedelta(days=1), now[0] - timedelta(hours=1)) == 1
    assert [seq for seq, _ in second.read("op1", 0)] == [1, 2, 3]
    # Ten days on, everything is pruned; the stream still never reuses a seq.
    now[0] += timedelta(days=10)
    assert second.prune(now[0] - timedelta(days=1)) == 3
    assert second.read("op1", 0) == []
    out = await second.ingest([ev("call.offered", "c2", operator_id="op1")])
    assert out[0].seq == 5


# ---- the socket's replay and overflow logic ----


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[int] = []

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text)["seq"])


async def test_a_socket_that_overflows_catches_up_from_the_database_exactly_once(tmp_path: Path) -> None:
    log = EventLog(make_engine(tmp_path / "db.sqlite"))
    connection = Connection("op1", backlog=10)

    def listener(messages: Sequence[Message]) -> None:
        for m in messages:
            connection.offer(m)

    log.listeners.append(listener)
    connection.queue.put_nowait(_Resume(0))
    await log.ingest([ev("call.offered", "c1", operator_id="op1")])
    for i in range(60):
        await log.ingest([ev("transcript.partial", "c1", segment_id=f"s{i}")])
    assert connection.overflows > 0 and connection.queue.qsize() <= 11
    socket = FakeSocket()
    while not connection.queue.empty():
        item = connection.queue.get_nowait()
        if isinstance(item, _Resume):
            await desktop_stream._replay(socket, connection, log, item.after)  # type: ignore[arg-type]
        elif isinstance(item, Message) and item.seq > connection.last_sent:
            await socket.send_text(item.text)
            connection.last_sent = item.seq
    assert socket.sent == list(range(1, 62))


# ---- WebSocket resume through the app (also across an app restart on the same database file) ----


def receive(ws: Any, n: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while len(messages) < n:
        message = ws.receive_json()
        if message["type"] != "ping":
            messages.append(message)
    return messages


def test_resume_after_disconnect_and_restart_gets_every_event_exactly_once(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "db.sqlite")
    service = FakeService(engine)
    gateway = service.gateway
    assert gateway is not None
    seen: list[dict[str, Any]] = []

    app, desktop, auth = build_app(service)
    with TestClient(app) as client:
        op = token(client, auth, "op1002")
        with client.websocket_connect(f"/api/events?token={op}") as ws:
            on_loop(client, gateway.offer, "c1", "op1002")
            on_loop(client, gateway.answer, "c1", "op1002")
            seen += receive(ws, 2)
            for i in range(3):
                on_loop(client, gateway.final, "c1", f"s{i}", f"第{i}句")
            seen += receive(ws, 1)  # read one, leave two unread, and drop the connection
        # Events while nobody is connected.
        on_loop(client, gateway.final, "c1", "s3", "断线时")
        settle(client, desktop)
        with client.websocket_connect(f"/api/events?token={op}&after={seen[-1]['seq']}") as ws:
            seen += receive(ws, 3)
            # A second tab from scratch gets the whole stream too, without disturbing the first.
            with client.websocket_connect(f"/api/events?token={op}") as tab:
                assert [m["seq"] for m in receive(tab, 6)] == [1, 2, 3, 4, 5, 6]
                on_loop(client, gateway.final, "c1", "s4", "两个标签")
                assert receive(tab, 1)[0]["seq"] == 7
            seen += receive(ws, 1)
        on_loop(client, gateway.final, "c1", "s5", "重启前")  # stored by the shutdown's drain, not awaited here

    # A new app process on the same database: seq continues, resume still exact.
    service2 = FakeService(engine, gateway=FakeGateway())
    gateway2 = service2.gateway
    assert gateway2 is not None
    gateway2.live["c1"] = {"call_id": "c1", "operator_id": "op1002"}
    app2, _desktop2, auth2 = build_app(service2)
    with TestClient(app2) as client:
        op = token(client, auth2, "op1002")
        with client.websocket_connect(f"/api/events?token={op}&after={seen[-1]['seq']}") as ws:
            seen += receive(ws, 1)
            on_loop(client, gateway2.final, "c1", "s6", "重启后")
            on_loop(client, gateway2.end, "c1")
            seen += receive(ws, 2)
            # The client asks to replay from 5 on the same socket: it gets 6.. again, then live ones continue.
            ws.send_json({"type": "resume", "after": 5})
            assert [m["seq"] for m in receive(ws, 5)] == [6, 7, 8, 9, 10]
            on_loop(client, gateway2.offer, "c2", "op1002")
            assert receive(ws, 1)[0]["seq"] == 11

    seqs = [m["seq"] for m in seen]
    assert seqs == list(range(1, 11))  # every event once, in order, across a disconnect and a restart
    assert [m["type"] for m in seen] == ["call.offered", "call.answered"] + ["transcript.final"] * 7 + ["call.ended"]
    assert [m["segment_id"] for m in seen if m["type"] == "transcript.final"] == [f"s{i}" for i in range(7)]


def test_the_socket_pings_when_idle(tmp_path: Path) -> None:
    app, _desktop, auth = build_app(
        FakeService(make_engine(tmp_path / "db.sqlite")), DesktopSettings(ping_interval_s=0.05)
    )
    with TestClient(app) as client, client.websocket_connect(f"/api/events?token={token(client, auth, 'op1')}") as ws:
        message = ws.receive_json()
        assert message["type"] == "ping" and "seq" not in message
        # Whatever else a client sends is ignored; the socket stays up.
        ws.send_json({"type": "pong"})
        ws.send_bytes(b"\xff\x00")
        ws.send_text("not json")
        ws.send_json({"type": "resume", "after": -5})
        assert ws.receive_json()["type"] == "ping"


@pytest.mark.parametrize("after", ["-1", "abc", str(2**64)])
def test_a_malformed_after_closes_with_4400(tmp_path: Path, after: str) -> None:
    app, _desktop, auth = build_app(FakeService(make_engine(tmp_path / "db.sqlite")))
    with TestClient(app) as client:
        op = token(client, auth, "op1")
        with (
            client.websocket_connect(f"/api/events?token={op}&after={after}") as ws,
            pytest.raises(WebSocketDisconnect) as closed,
        ):
            ws.receive_text()
        assert closed.value.code == 4400


# ---- a desk connecting while a restarted gateway reads its database ----


def _stored_call(engine: Engine) -> str:
    """A first gateway process stores an offered and answered call for op1002 (seq 1 and 2); its epoch."""
    service = FakeService(engine)
    assert service.gateway is not None
    app, desktop, auth = build_app(service)
    with TestClient(app) as client:
        token(client, auth, "op1002")
        on_loop(client, service.gateway.offer, "c1", "op1002")
        on_loop(client, service.gateway.answer, "c1", "op1002")
        settle(client, desktop)
        return desktop.log.epoch


def _restarted(engine: Engine) -> tuple[FastAPI, Desktop, FakeGateway, AuthService]:
    gateway = FakeGateway()
    gateway.live["c1"] = {"call_id": "c1", "operator_id": "op1002"}
    app, desktop, auth = build_app(FakeService(engine, gateway=gateway))
    return app, desktop, gateway, auth


def test_a_desk_connecting_while_the_restarted_gateway_still_reads_its_database_resumes_where_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(tmp_path / "db.sqlite")
    epoch = _stored_call(engine)
    read_state = EventLog._read_state

    def slow_disk(log: EventLog) -> Any:
        time.sleep(0.5)  # the desk's socket arrives before the counters are read
        return read_state(log)

    monkeypatch.setattr(EventLog, "_read_state", slow_disk)
    app, _desktop, gateway, auth = _restarted(engine)
    with TestClient(app) as client:
        op = token(client, auth, "op1002")
        with client.websocket_connect(f"/api/events?token={op}&after=2&epoch={epoch}") as ws:
            on_loop(client, gateway.final, "c1", "s1", "重启以后")
            message = receive(ws, 1)[0]  # not a resync to 0: the desk's 2 is what the database holds
            assert (message["type"], message["seq"], message["text"]) == ("transcript.final", 3, "重启以后")
        assert client.get("/api/me", headers=bearer(op)).json()["last_seq"] == 3


def test_a_database_unreadable_at_start_is_retried_and_the_desk_told_to_come_back_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(tmp_path / "db.sqlite")
    epoch = _stored_call(engine)
    read_state = EventLog._read_state
    disk_away = threading.Event()
    disk_away.set()

    def failing_disk(log: EventLog) -> Any:
        if disk_away.is_set():
            raise sa.exc.OperationalError("SELECT", {}, sqlite3.OperationalError("disk I/O error"))
        return read_state(log)

    monkeypatch.setattr(EventLog, "_read_state", failing_disk)
    app, desktop, gateway, auth = _restarted(engine)
    with TestClient(app) as client:
        op = token(client, auth, "op1002")
        with client.websocket_connect(f"/api/events?token={op}&after=2&epoch={epoch}") as ws:
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
            assert closed.value.code == 1013  # "try again later": the page reconnects with backoff
        me = client.get("/api/me", headers=bearer(op))
        assert me.status_code == 503 and "OperationalError" in me.json()["detail"]
        on_loop(client, gateway.final, "c1", "s1", "磁盘回来之前")  # waits on the bus meanwhile
        deadline = time.monotonic() + 5
        while desktop.log.storing and time.monotonic() < deadline:  # the second failed read says so
            time.sleep(0.01)
        disk_away.clear()
        with client.websocket_connect(f"/api/events?token={op}&after=2&epoch={epoch}") as ws:
            messages = receive(ws, 1)
            while messages[-1]["type"] == "stream.status":
                messages += receive(ws, 1)
        line = messages[-1]
        assert (line["type"], line["seq"], line["text"]) == ("transcript.final", 3, "磁盘回来之前")
        # Whether the desk connected before the log's own retry read the database or after it, it is left "live".
        states = [m["state"] for m in messages[:-1]]
        assert states in ([], ["live"], ["waiting_for_database", "live"]), states
        assert client.get("/api/me", headers=bearer(op)).json()["last_seq"] == 3
