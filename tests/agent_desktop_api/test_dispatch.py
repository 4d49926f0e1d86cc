"""Submitted tickets to the dispatch system: a real HTTP receiver on loopback (down, failing, refusing, taking),
the desk's sender posting signed deliveries from the outbox; and the admins' JSON/CSV export."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from agent_desktop_api.dispatch import DeliveryStore, DispatchSender, enqueue
from agent_desktop_api.settings import DesktopSettings, DispatchSettings
from tests.agent_desktop_api.desktop_support import FakeService, bearer, build_app, make_engine
from tests.agent_desktop_api.test_desktop_api import Env
from tests.voice.conftest import free_tcp_port

SECRET = "dispatch-secret"


class Receiver:
    """The dispatch system's webhook: answers `answers` in turn (then 200), checks the signature, keeps bodies."""

    def __init__(self) -> None:
        self.port = free_tcp_port()
        self.url = f"http://127.0.0.1:{self.port}/tickets"
        self.answers: list[int] = []
        self.requests: list[dict[str, Any]] = []
        self.taken: dict[str, int] = {}  # idempotency key -> times answered 2xx
        self._server: ThreadingHTTPServer | None = None

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stamp, key = self.headers["X-Hotline-Timestamp"], self.headers["Idempotency-Key"]
                expected = (
                    "sha256=" + hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
                )
                signed = hmac.compare_digest(expected, self.headers.get("X-Hotline-Signature", ""))
                code = receiver.answers.pop(0) if receiver.answers else 200
                receiver.requests.append({"key": key, "signed": signed, "body": json.loads(body), "code": code})
                if 200 <= code < 300:
                    receiver.taken[key] = receiver.taken.get(key, 0) + 1
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 64

        self._server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.down()


def dispatch_settings(receiver: Receiver) -> DispatchSettings:
    return DispatchSettings(
        webhook_url=receiver.url, secret=SecretStr(SECRET), retry_min_s=0.05, retry_max_s=0.2, poll_s=0.05, timeout_s=2
    )


@pytest.fixture
def env(tmp_path: Path, receiver: Receiver) -> Iterator[Env]:
    service = FakeService(make_engine(tmp_path / "db.sqlite"))
    service.settings = SimpleNamespace(desktop=DesktopSettings(), dispatch=dispatch_settings(receiver))
    assert service.gateway is not None
    app, desktop, auth = build_app(service)
    with TestClient(app) as client:
        yield Env(app, client, desktop, auth, service.gateway)


def file_ticket(env: Env, call_id: str = "c1", summary: str = "楼下路灯不亮") -> None:
    env.call(call_id)
    h = bearer(env.op)
    fields = {"category_code": "02.03.01", "district": "海淀区", "summary": summary}
    assert env.client.patch(f"/api/calls/{call_id}/ticket", headers=h, json=fields).status_code == 200
    assert env.client.post(f"/api/calls/{call_id}/ticket", headers=h).status_code == 200


def deliveries(env: Env, **params: str) -> list[dict[str, Any]]:
    answer = env.client.get("/api/admin/dispatch", headers=bearer(env.admin), params=params)
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()["deliveries"]
    return rows


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_ticket_filed_while_the_receiver_is_down_is_delivered_once_when_it_is_back(
    env: Env, receiver: Receiver
) -> None:
    file_ticket(env)  # the receiver is not listening
    wait_for(lambda: deliveries(env)[0]["attempts"] >= 2)
    [pending] = deliveries(env)
    assert pending["status"] == "pending" and "ConnectError" in pending["last_error"]
    receiver.answers = [503, 503]  # back, but failing twice first
    receiver.up()
    wait_for(lambda: deliveries(env)[0]["status"] == "delivered")
    time.sleep(0.3)  # nothing more is sent after that
    assert [r["code"] for r in receiver.requests] == [503, 503, 200]
    assert len({r["key"] for r in receiver.requests}) == 1 and all(r["signed"] for r in receiver.requests)
    assert list(receiver.taken.values()) == [1]  # taken exactly once
    body = receiver.requests[-1]["body"]
    assert body["call_id"] == "c1" and body["caller_number"] == "13800138000" and body["submitted_by"] == "op1002"
    assert body["ticket"]["category_code"] == "02.03.01" and body["ticket"]["summary"] == "楼下路灯不亮"
    assert body["idempotency_key"] == receiver.requests[-1]["key"]


def test_a_refused_ticket_becomes_a_dead_letter_an_admin_sees_and_retries(env: Env, receiver: Receiver) -> None:
    receiver.answers = [422]
    receiver.up()
    file_ticket(env)
    wait_for(lambda: deliveries(env, status="dead") != [])
    [dead] = deliveries(env, status="dead")
    assert dead["attempts"] == 1 and dead["last_error"].startswith("HTTP 422")
    assert env.client.post("/api/admin/dispatch/c1/retry", headers=bearer(env.op)).status_code == 403
    assert env.client.post("/api/admin/dispatch/nope/retry", headers=bearer(env.admin)).status_code == 404
    retried = env.client.post("/api/admin/dispatch/c1/retry", headers=bearer(env.admin))
    assert retried.status_code == 200, retried.text
    wait_for(lambda: deliveries(env)[0]["status"] == "delivered")
    assert [r["code"] for r in receiver.requests] == [422, 200]


async def test_two_desk_processes_sharing_the_outbox_send_each_ticket_once(tmp_path: Path, receiver: Receiver) -> None:
    receiver.up()
    engine = make_engine(tmp_path / "db.sqlite")
    store = DeliveryStore(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for i in range(30):
            enqueue(conn, f"c{i}", {"call_id": f"c{i}", "ticket": {"summary": "x"}}, now)
    senders = [DispatchSender(DeliveryStore(engine), dispatch_settings(receiver)) for _ in range(2)]
    try:
        async with asyncio.timeout(20):
            while len(receiver.taken) < 30:  # both at once, again and again, as two desks' loops would
                await asyncio.gather(*(sender.send_due() for sender in senders))
                await asyncio.sleep(0.05)
    finally:
        for sender in senders:
            await sender.stop()
    assert len(receiver.taken) == 30 and set(receiver.taken.values()) == {1}
    assert {row["status"] for row in store.list()} == {"delivered"}


def test_of_two_desks_that_read_the_same_due_delivery_only_one_claims_it(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "db.sqlite")
    store, other = DeliveryStore(engine), DeliveryStore(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        enqueue(conn, "c1", {"call_id": "c1"}, now)
    seen = store.due(now)  # this desk read it ...
    assert [row["call_id"] for row in other.claim_due(now)] == ["c1"]  # ... the other desk claimed it first
    assert [store.claim(row, now) for row in seen] == [False]
    assert store.claim_due(now) == []  # and it is not due again until the lease ends


def test_admins_export_submitted_tickets_as_json_and_csv(env: Env, receiver: Receiver) -> None:
    receiver.up()
    file_ticket(env, "c1")
    file_ticket(env, "c2", summary="=HYPERLINK(1) 路灯")
    admin = bearer(env.admin)
    exported = env.client.get("/api/admin/tickets/export", headers=admin).json()
    assert [t["call_id"] for t in exported] == ["c2", "c1"]
    assert exported[1]["fields"]["summary"] == "楼下路灯不亮"
    answer = env.client.get("/api/admin/tickets/export", headers=admin, params={"format": "csv"})
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text.lstrip("\ufeff"))))
    assert [row["call_id"] for row in rows] == ["c2", "c1"] and rows[1]["district"] == "海淀区"
    assert rows[0]["summary"] == "'=HYPERLINK(1) 路灯"  # a caller's words never become a spreadsheet formula
    later = env.client.get("/api/admin/tickets/export", headers=admin, params={"since": "2100-01-01T00:00:00Z"})
    assert later.json() == []
    assert env.client.get("/api/admin/tickets/export", headers=bearer(env.op)).status_code == 403
