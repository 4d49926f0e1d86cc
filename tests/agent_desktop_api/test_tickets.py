"""The ticket at the desk: drafted from the call by the real ticket assistant on the bus, edited by the operator
(each change kept with who made it), submitted, then found among the caller's tickets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assist.ticket.catalogue import load_catalogue
from assist.ticket_assistant import TicketAssistant
from tests.agent_desktop_api.desktop_support import FakeService, bearer, build_app, make_engine, on_loop, settle
from tests.agent_desktop_api.test_desktop_api import Env


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    service = FakeService(make_engine(tmp_path / "db.sqlite"))
    assert service.gateway is not None
    app, desktop, auth = build_app(service)
    with TestClient(app) as client:
        assistant = TicketAssistant(service.gateway.bus, load_catalogue())
        on_loop(client, assistant.start)
        yield Env(app, client, desktop, auth, service.gateway)
        on_loop(client, assistant.stop)


def say(env: Env, segment_id: str, text: str) -> None:
    env.run(env.gateway.final, "c1", segment_id, text)
    settle(env.client, env.desktop)  # the assistant's draft, published after the final, stored too
    settle(env.client, env.desktop)


def test_the_draft_fills_from_the_call_and_the_operator_corrects_and_submits_it(env: Env) -> None:
    env.call()
    h = bearer(env.op)
    say(env, "s1", "你好，我姓王，我们楼的电梯坏了三天了，老人下不了楼")
    say(env, "s2", "我的电话是幺三九幺二三四五六七八")
    ticket = env.client.get("/api/calls/c1/ticket", headers=h).json()
    assert ticket["status"] == "open" and ticket["edited"] == []
    fields = ticket["fields"]
    assert fields["category_code"] == "01.02.03" and fields["response"] == "24h"
    assert fields["callback_number"] == "13912345678" and fields["caller_name"] == "王"
    assert ticket["categories"][0]["words"] == ["电梯坏"]
    assert env.client.post("/api/calls/c1/ticket", headers=h).status_code == 422  # no district yet

    edit = {"district": "海淀区", "town": "中关村街道", "caller_name": "王先生"}
    edited = env.client.patch("/api/calls/c1/ticket", headers=h, json=edit).json()
    assert edited["edited"] == ["caller_name", "district", "town"]
    assert sorted((c["field"], c["old"], c["new"], c["changed_by"]) for c in edited["changes"]) == [
        ("caller_name", "王", "王先生", "op1002"),
        ("district", None, "海淀区", "op1002"),
        ("town", None, "中关村街道", "op1002"),
    ]
    say(env, "s3", "对了我叫王大明")  # a later draft keeps the operator's name
    assert env.client.get("/api/calls/c1/ticket", headers=h).json()["fields"]["caller_name"] == "王先生"

    submitted = env.client.post("/api/calls/c1/ticket", headers=h)
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert body["status"] == "submitted" and body["submitted_by"] == "op1002"
    assert body["fields"]["district"] == "海淀区" and body["fields"]["summary"].startswith("你好，我姓王")
    assert env.client.post("/api/calls/c1/ticket", headers=h).status_code == 409
    assert env.client.patch("/api/calls/c1/ticket", headers=h, json={"town": "x"}).status_code == 409

    mine = env.client.get("/api/tickets", headers=h, params={"caller_number": "13800138000"}).json()["tickets"]
    assert [(t["call_id"], t["fields"]["category_code"]) for t in mine] == [("c1", "01.02.03")]
    assert env.client.get("/api/tickets", headers=bearer(env.other)).json()["tickets"] == []
    assert len(env.client.get("/api/tickets", headers=bearer(env.admin)).json()["tickets"]) == 1


def test_only_the_calls_operator_and_admins_see_or_change_its_ticket_and_bad_values_are_refused(env: Env) -> None:
    env.call()
    say(env, "s1", "路灯坏了")
    other = bearer(env.other)
    assert env.client.get("/api/calls/c1/ticket", headers=other).status_code == 403
    assert env.client.patch("/api/calls/c1/ticket", headers=other, json={"district": "x"}).status_code == 403
    assert env.client.get("/api/calls/c1/ticket", headers=bearer(env.admin)).status_code == 200
    assert env.client.get("/api/calls/nope/ticket", headers=bearer(env.op)).status_code == 404
    h = bearer(env.op)
    assert env.client.patch("/api/calls/c1/ticket", headers=h, json={"response": "3d"}).status_code == 422
    assert env.client.patch("/api/calls/c1/ticket", headers=h, json={"summary": "x" * 2001}).status_code == 422
    assert env.client.patch("/api/calls/c1/ticket", headers=h, json={"dial": "PJSIP/x"}).status_code == 422
    assert env.client.get("/api/calls/c1/ticket", headers=h).json()["changes"] == []  # nothing was written
    assert env.client.get("/api/tickets", headers=h, params={"caller_number": "1; drop"}).status_code == 422
