"""The call history at the desk: every call kept as a record from the bus (path, queue, operator, times, who ended
it, transcript, place), its ticket joined; searched by number, words, category, district and date; an operator
sees their own calls and, for the call on the line, the number's earlier calls (the repeat-caller flag)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent_desktop_api.history import CallArchive
from assist.ticket.catalogue import load_catalogue
from assist.ticket_assistant import TicketAssistant
from tests.agent_desktop_api.desktop_support import FakeService, bearer, build_app, make_engine, on_loop, settle
from tests.agent_desktop_api.test_desktop_api import Env
from tests.support.audio import make_tone_wav


class HistoryEnv(Env):
    def run(self, func: Any, *args: Any) -> None:
        super().run(func, *args)
        settle(self.client, self.desktop)  # the ticket assistant's draft after a final
        on_loop(self.client, self.desktop.history.settled)

    def place(self, call_id: str, district: str, town: str) -> None:
        candidate = {
            "district": district,
            "town": town,
            "community": None,
            "adcode": "110108",
            "level": "town",
            "confidence": 0.9,
            "source": "gazetteer",
        }
        bus = self.gateway.bus
        self.run(lambda: bus.emit("address.candidates", call_id, segment_id="s1", text=town, candidates=[candidate]))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[HistoryEnv]:
    service = FakeService(make_engine(tmp_path / "db.sqlite"))
    assert service.gateway is not None
    app, desktop, auth = build_app(service)
    with TestClient(app) as client:
        assistant = TicketAssistant(service.gateway.bus, load_catalogue())
        on_loop(client, assistant.start)
        yield HistoryEnv(app, client, desktop, auth, service.gateway)
        on_loop(client, assistant.stop)


def test_a_call_is_kept_with_its_path_transcript_place_ticket_and_who_ended_it(env: HistoryEnv) -> None:
    env.call("c1")
    env.run(env.gateway.final, "c1", "s1", "你好，我们楼的电梯坏了三天了")
    env.run(env.gateway.final, "c1", "s2", "请您说一下地址", "operator")
    env.place("c1", "海淀区", "中关村街道")
    h = bearer(env.op)
    assert env.client.get("/api/history", headers=h).json()["calls"] == []  # kept when the call ends
    env.run(env.gateway.end, "c1", "operator_hangup")
    submitted = env.client.post("/api/calls/c1/ticket", headers=h)  # filed in wrap-up, after the call
    assert submitted.status_code == 200, submitted.text

    [call] = env.client.get("/api/history", headers=h).json()["calls"]
    assert call["call_id"] == "c1" and call["caller_number"] == "13800138000" and call["operator_id"] == "op1002"
    assert call["ivr_path"] == ["language:1", "service:1"] and call["queue"] == "zh"
    assert call["reason"] == "operator_hangup" and call["answered_at"] and call["ended_at"]
    assert call["place"] == {"district": "海淀区", "town": "中关村街道", "community": None, "source": "heard"}
    assert call["lines"] == 2 and call["first_line"] == "你好，我们楼的电梯坏了三天了"
    assert call["ticket"]["status"] == "submitted" and call["ticket"]["category_code"] == "01.02.03"
    record = env.client.get("/api/history/c1", headers=h).json()
    assert [(line["speaker"], line["text"]) for line in record["transcript"]] == [
        ("caller", "你好，我们楼的电梯坏了三天了"),
        ("operator", "请您说一下地址"),
    ]

    # a place the operator confirms after the call replaces the heard one
    confirm = {"segment_id": "s1", "district": "海淀区", "town": "海淀街道", "source": "corrected"}
    assert env.client.post("/api/calls/c1/address", headers=h, json=confirm).status_code == 200
    on_loop(env.client, env.desktop.history.settled)
    place = env.client.get("/api/history/c1", headers=h).json()["place"]
    assert place == {"district": "海淀区", "town": "海淀街道", "community": None, "source": "corrected"}


def test_search_by_number_words_category_district_and_date_with_paging(env: HistoryEnv) -> None:
    said = {"c1": "楼下路灯坏了", "c2": "电梯坏了", "c3": "小区停车位被占了"}
    for call_id, text in said.items():
        env.call(call_id)
        env.run(env.gateway.final, call_id, "s1", text)
        env.place(call_id, "朝阳区" if call_id == "c3" else "海淀区", "望京街道")
        env.run(env.gateway.end, call_id)
    assert env.client.post("/api/calls/c2/ticket", headers=bearer(env.op)).status_code == 200

    def ids(**params: Any) -> list[str]:
        answer = env.client.get("/api/history", headers=bearer(env.admin), params=params)
        assert answer.status_code == 200, answer.text
        return [call["call_id"] for call in answer.json()["calls"]]

    assert ids() == ["c3", "c2", "c1"]  # newest first
    assert ids(number="0013800") == ["c3", "c2", "c1"] and ids(number="13900") == []
    assert ids(q="路灯") == ["c1"] and ids(q="100%") == []  # wildcards are text
    assert ids(category="01") == ["c2"] and ids(category="01.02.03") == ["c2"] and ids(category="02") == []
    assert ids(district="朝阳区") == ["c3"]
    assert ids(since=(datetime.now(UTC) + timedelta(minutes=1)).isoformat()) == []
    first = env.client.get("/api/history", headers=bearer(env.admin), params={"limit": 2}).json()
    assert [c["call_id"] for c in first["calls"]] == ["c3", "c2"] and first["next_before"]
    assert ids(limit=2, before=first["next_before"]) == ["c1"]

    for bad in ({"number": "1; drop"}, {"category": "x%"}, {"district": "a" * 20}, {"q": "x" * 101}, {"limit": 0}):
        assert env.client.get("/api/history", headers=bearer(env.admin), params=bad).status_code == 422, bad


def test_an_operator_sees_their_own_calls_and_the_earlier_calls_of_the_number_on_the_line(env: HistoryEnv) -> None:
    env.call("c1", "op1003")  # the same number called before, and op1003 took it
    env.run(env.gateway.final, "c1", "s1", "楼下路灯坏了")
    env.run(env.gateway.end, "c1")
    assert [c["call_id"] for c in env.client.get("/api/history", headers=bearer(env.other)).json()["calls"]] == ["c1"]
    assert env.client.get("/api/history", headers=bearer(env.op)).json()["calls"] == []
    assert env.client.get("/api/history/c1", headers=bearer(env.op)).status_code == 404  # not theirs
    assert env.client.get("/api/history/c1", headers=bearer(env.admin)).status_code == 200

    env.call("c2", "op1002")  # now the number calls op1002
    repeat = env.client.get("/api/calls/c2/caller-history", headers=bearer(env.op)).json()
    assert repeat["caller_number"] == "13800138000" and repeat["earlier_calls"] == 1
    assert repeat["calls"][0]["call_id"] == "c1" and repeat["calls"][0]["first_line"] == "楼下路灯坏了"
    assert env.client.get("/api/calls/c2/caller-history", headers=bearer(env.other)).status_code == 403


def test_records_older_than_the_retention_are_pruned(env: HistoryEnv, tmp_path: Path) -> None:
    env.call("c1")
    env.run(env.gateway.end, "c1")
    archive: CallArchive = env.desktop.history
    assert archive.prune(datetime.now(UTC) - timedelta(days=1)) == 0
    assert archive.prune(datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert env.client.get("/api/history", headers=bearer(env.admin)).json()["calls"] == []


def test_the_recording_plays_for_the_calls_operator_and_admins_and_each_opening_is_kept(
    env: HistoryEnv, tmp_path: Path
) -> None:
    folder = tmp_path / "recordings"
    (folder / "2026-12-04").mkdir(parents=True)
    make_tone_wav(folder / "2026-12-04" / "c1.wav", 440.0, 2.0)
    env.desktop.recordings = folder
    env.call("c1")
    env.run(env.gateway.end, "c1")
    recorded = {"recording": "2026-12-04/c1.wav", "seconds": 2.0, "bytes": 32044}
    env.run(lambda: env.gateway.bus.emit("call.recorded", "c1", **recorded))
    assert env.client.get("/api/history/c1", headers=bearer(env.op)).json()["recording_seconds"] == 2.0
    heard = env.client.get("/api/history/c1/recording", headers=bearer(env.op))
    assert heard.status_code == 200 and heard.headers["content-type"] == "audio/wav"
    assert heard.content == (folder / "2026-12-04" / "c1.wav").read_bytes()
    assert env.client.get("/api/history/c1/recording", headers=bearer(env.other)).status_code == 404
    assert env.client.get("/api/history/c1/recording", headers=bearer(env.admin)).status_code == 200
    access = env.client.get("/api/history/c1/recording/access", headers=bearer(env.admin)).json()
    assert [(entry["user"], entry["role"]) for entry in access["listeners"]] == [
        ("op1002", "operator"),
        ("ann", "admin"),
    ]
    assert env.client.get("/api/history/c1/recording/access", headers=bearer(env.op)).status_code == 403

    # a recording name from the bus never reaches outside the folder
    env.call("c2")
    env.run(env.gateway.end, "c2")
    escape = {"recording": "../../db.sqlite", "seconds": 1.0, "bytes": 10}
    env.run(lambda: env.gateway.bus.emit("call.recorded", "c2", **escape))
    assert env.client.get("/api/history/c2/recording", headers=bearer(env.op)).status_code == 404
