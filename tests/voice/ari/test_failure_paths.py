"""Failure paths of the ARI client against fakes with real sockets (the happy paths run on real Asterisk)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from voice.ari import (
    AriAuthError,
    AriBadRequest,
    AriClient,
    AriConflict,
    AriConnectionError,
    AriError,
    AriEvent,
    AriEventStream,
    AriNotFound,
    AriRestClient,
    AriServerError,
    AriTimeout,
    AriUnprocessable,
    ChannelDtmfReceived,
    StasisStart,
)

from .fake_ari import FakeAri, channel, event, free_port

# ------------------------------------------------------------------------------------------------ REST


Handler = Callable[[web.Request], Awaitable[web.Response]]


@asynccontextmanager
async def fake_rest(handler: Handler, timeout: float = 2.0) -> AsyncIterator[AriRestClient]:
    """An ARI REST client against a local HTTP server that answers every request with `handler`."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with AriRestClient(f"http://{host}:{port}/ari", "hotline", "secret", timeout) as rest:
            yield rest
    finally:
        await runner.cleanup()


def answer(status: int, body: dict[str, Any] | list[Any] | str | None = None) -> web.Response:
    if body is None:
        return web.Response(status=status)
    if isinstance(body, str):
        return web.Response(status=status, text=body)
    return web.json_response(body, status=status)


@dataclass
class Seen:
    """A request as the server got it."""

    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


async def seen(request: web.Request) -> Seen:
    query = dict(request.query)
    return Seen(request.method, request.path, request.raw_path, query, dict(request.headers), await request.read())


@pytest.mark.parametrize(
    ("status", "body", "error_type", "message"),
    [
        (400, {"message": "Field 'media' is required"}, AriBadRequest, "Field 'media' is required"),
        (401, {"error": "Authentication required"}, AriAuthError, "Authentication required"),
        (403, "Forbidden\n", AriAuthError, "Forbidden"),
        (404, {"message": "Channel not found"}, AriNotFound, "Channel not found"),
        (
            409,
            {"message": "Channel not in Stasis application"},
            AriConflict,
            "Channel not in Stasis application",
        ),
        (422, {"message": "Channel not in Stasis application"}, AriUnprocessable, "Channel not in Stasis"),
        (500, "", AriServerError, "Internal Server Error"),
        (503, {"message": "Service unavailable"}, AriServerError, "Service unavailable"),
    ],
)
async def test_http_status_maps_to_typed_error(
    status: int, body: dict[str, str] | str, error_type: type[AriError], message: str
) -> None:
    requests: list[Seen] = []

    async def handler(request: web.Request) -> web.Response:
        requests.append(await seen(request))
        return answer(status, body)

    async with fake_rest(handler) as rest:
        with pytest.raises(error_type) as caught:
            await rest.answer("abc")
    error = caught.value
    assert error.status == status
    assert error.message.startswith(message)
    assert (error.method, error.path) == ("POST", "/channels/abc/answer")
    assert str(error) == f"ARI POST /channels/abc/answer → {status} {error.message}"
    assert requests[0].path == "/ari/channels/abc/answer"
    assert requests[0].headers["Authorization"].startswith("Basic ")


async def test_not_found_reads_well() -> None:
    async def handler(request: web.Request) -> web.Response:
        return answer(404, {"message": "Channel not found"})

    async with fake_rest(handler) as rest:
        with pytest.raises(AriNotFound) as caught:
            await rest.answer("abc")
    assert str(caught.value) == "ARI POST /channels/abc/answer → 404 Channel not found"
    assert isinstance(caught.value, AriError)


async def test_no_content_and_typed_answers() -> None:
    requests: list[Seen] = []

    async def handler(request: web.Request) -> web.Response:
        requests.append(await seen(request))
        path = request.path
        if path == "/ari/channels" and request.method == "GET":
            return answer(200, [channel("1.1"), channel("1.2")])
        if path == "/ari/channels/1.1/play":
            playback = {"id": "pb1", "media_uri": "sound:hello", "target_uri": "channel:1.1", "state": "queued"}
            return answer(201, playback)
        if path == "/ari/channels":
            return answer(200, channel("op-1", state="Down"))
        if path == "/ari/channels/1.1/variable":
            return answer(200, {"value": "42"})
        return answer(204)

    async with fake_rest(handler) as rest:
        channels = await rest.list_channels()
        assert [c.id for c in channels] == ["1.1", "1.2"]
        assert channels[0].dialplan.exten == "12345" and channels[0].caller.number == "13800000000"
        await rest.answer("1.1")  # 204 No Content
        assert await rest.request("POST", "/channels/1.1/answer") is None
        await rest.hangup("1.1", reason="busy")
        playback = await rest.play("1.1", ["sound:hello", "sound:world"], playback_id="pb1", lang="zh")
        assert playback.channel_id == "1.1"
        originated = await rest.originate(
            "PJSIP/op1001", "hotline", app_args=["operator", "q1"], variables={"CALL_ID": "c1"}
        )
        assert originated.id == "op-1"
        assert await rest.get_variable("1.1", "X") == "42"
        await rest.add_to_bridge("b 1", ["1.1", "1.2"])

    by_path = {(r.method, r.path): r for r in requests}
    hangup = by_path[("DELETE", "/ari/channels/1.1")]
    assert hangup.query["reason"] == "busy"
    play = by_path[("POST", "/ari/channels/1.1/play")]
    assert play.query["media"] == "sound:hello,sound:world"
    assert play.query["playbackId"] == "pb1" and play.query["lang"] == "zh"
    orig = by_path[("POST", "/ari/channels")]
    assert orig.query["appArgs"] == "operator,q1" and orig.query["timeout"] == "30"
    assert json.loads(orig.body) == {"variables": {"CALL_ID": "c1"}}
    add = by_path[("POST", "/ari/bridges/b 1/addChannel")]
    assert add.raw_path.startswith("/ari/bridges/b%201/addChannel")
    assert add.query["channel"] == "1.1,1.2"


async def _silent_server() -> tuple[asyncio.Server, int, list[asyncio.StreamWriter]]:
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], writers


async def test_request_timeout_raises_ari_timeout() -> None:
    server, port, writers = await _silent_server()
    try:
        async with AriRestClient(f"http://127.0.0.1:{port}/ari", "u", "p", timeout=0.3) as rest:
            started = time.monotonic()
            with pytest.raises(AriTimeout) as caught:
                await rest.get_channel("abc")
            assert time.monotonic() - started < 2.0
        assert caught.value.method == "GET" and caught.value.path == "/channels/abc"
        assert "GET /channels/abc" in str(caught.value)
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_connection_refused_raises_connection_error() -> None:
    port = free_port()  # nothing listens there
    async with AriRestClient(f"http://127.0.0.1:{port}", "u", "p", timeout=2.0) as rest:
        assert rest.base_url == f"http://127.0.0.1:{port}/ari"
        started = time.monotonic()
        with pytest.raises(AriConnectionError) as caught:
            await rest.asterisk_info()
        assert time.monotonic() - started < 2.0
    assert caught.value.status is None
    assert str(caught.value).startswith("ARI GET /asterisk/info: cannot connect to")


# ------------------------------------------------------------------------------------------- WebSocket


class Recorder:
    """Consumes a stream in a task, recording events and on_connected calls in one timeline."""

    def __init__(self) -> None:
        self.timeline: list[Any] = []
        self.error: BaseException | None = None
        self.changed = asyncio.Event()

    async def on_connected(self, is_reconnect: bool) -> None:
        self.timeline.append(("connected", is_reconnect))
        self.changed.set()

    async def consume(self, stream: AriEventStream) -> None:
        try:
            async for ev in stream:
                self.timeline.append(ev)
                self.changed.set()
        except BaseException as exc:
            self.error = exc
            self.changed.set()
            raise

    async def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self.timeline):
                self.changed.clear()
                await self.changed.wait()

    def events(self) -> list[AriEvent]:
        return [item for item in self.timeline if isinstance(item, AriEvent)]


def make_stream(fake: FakeAri, recorder: Recorder, **kwargs: Any) -> AriEventStream:
    options: dict[str, Any] = {"reconnect_initial_s": 0.05, "reconnect_max_s": 0.5, "ping_interval_s": 5.0}
    options.update(kwargs)
    password = options.pop("password", fake.password)
    return AriEventStream(
        fake.base_url, fake.username, password, "hotline", on_connected=recorder.on_connected, **options
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeAri]:
    async with FakeAri() as server:
        yield server


async def _run_consumer(recorder: Recorder, stream: AriEventStream) -> asyncio.Task[None]:
    return asyncio.create_task(recorder.consume(stream))


async def test_events_delivered_typed_and_in_order(fake: FakeAri) -> None:
    recorder = Recorder()
    async with make_stream(fake, recorder) as stream:
        await stream.wait_connected(5)
        assert fake.requests[0] == "/ari/events?app=hotline&subscribeAll=false"
        consumer = await _run_consumer(recorder, stream)
        await fake.wait_connections(1)
        await fake.send(event("StasisStart", args=["in"], channel=channel("1.1")))
        for digit in "123":
            await fake.send(event("ChannelDtmfReceived", digit=digit, duration_ms=100, channel=channel("1.1")))
        await fake.send(event("SomethingNew", channel=channel("1.1"), extra=1))
        await recorder.wait_for(lambda t: len(t) == 6)
        first, *dtmf, unknown = recorder.events()
        assert recorder.timeline[0] == ("connected", False)
        assert isinstance(first, StasisStart) and first.args == ["in"] and first.channel_ids() == ["1.1"]
        assert [e.digit for e in dtmf if isinstance(e, ChannelDtmfReceived)] == ["1", "2", "3"]
        assert type(unknown) is AriEvent and unknown.raw["extra"] == 1 and unknown.channel_ids() == ["1.1"]
        assert stream.events_received == 5 and stream.reconnects == 0
    await asyncio.wait_for(consumer, 2)  # close() ends the iteration


async def test_malformed_event_is_skipped(fake: FakeAri) -> None:
    recorder = Recorder()
    async with make_stream(fake, recorder) as stream:
        consumer = await _run_consumer(recorder, stream)
        await stream.wait_connected(5)
        await fake.wait_connections(1)
        await fake.send("this is not json {")
        await fake.send(json.dumps(["a", "list"]))
        await fake.send(json.dumps({"no": "type"}))
        await fake.send(json.dumps(event("StasisStart")))  # no channel
        await fake.send(json.dumps(event("ChannelDtmfReceived", digit="5", channel={"name": "no id"})))
        await fake.send(event("StasisEnd", channel=channel("1.1")))
        await recorder.wait_for(lambda t: len(t) == 2)
        assert [e.type for e in recorder.events()] == ["StasisEnd"]
        assert stream.malformed_events == 5
        assert stream.connected and stream.reconnects == 0
    await asyncio.wait_for(consumer, 2)
    assert recorder.error is None


async def test_drop_reconnects_with_backoff_and_resyncs_before_new_events(fake: FakeAri) -> None:
    recorder = Recorder()
    async with make_stream(fake, recorder) as stream:
        consumer = await _run_consumer(recorder, stream)
        await stream.wait_connected(5)
        await fake.wait_connections(1)
        await fake.send(event("StasisStart", channel=channel("old")))
        await recorder.wait_for(lambda t: len(t) == 2)

        dropped = time.monotonic()
        fake.abort()
        await fake.wait_connections(2)
        reconnect_s = time.monotonic() - dropped
        await fake.send(event("StasisStart", channel=channel("new")))
        await recorder.wait_for(lambda t: len(t) == 4)
        # the resync hook ran before the new connection's events
        assert recorder.timeline[2] == ("connected", True)
        assert [e.channel_ids() for e in recorder.events()] == [["old"], ["new"]]
        assert stream.reconnects == 1 and stream.disconnects == 1 and stream.connects == 2
        assert stream.stats()["reconnects"] == 1 and stream.stats()["connected"] == 1
        assert reconnect_s < 1.0

        # A clean close by the server is a drop too; it keeps reconnecting.
        await fake.current.close(1001, "going away")
        await fake.wait_connections(3)
        await recorder.wait_for(lambda t: t[-1] == ("connected", True) and len(t) == 5)
        assert stream.reconnects == 2
    await asyncio.wait_for(consumer, 2)


async def test_wrong_credentials_fail_fast_without_retry(fake: FakeAri) -> None:
    recorder = Recorder()
    stream = make_stream(fake, recorder, password="wrong")
    consumer = await _run_consumer(recorder, stream)
    started = time.monotonic()
    with pytest.raises(AriAuthError) as caught:
        await stream.wait_connected(10)
    assert time.monotonic() - started < 2.0
    assert caught.value.status == 401
    assert str(caught.value) == "ARI GET /events → 401 Authentication required: wrong ARI user name or password"
    await asyncio.wait_for(asyncio.gather(consumer, return_exceptions=True), 2)
    assert isinstance(recorder.error, AriAuthError)  # the iteration raises it too
    await asyncio.sleep(0.5)
    assert fake.handshakes == 1 and fake.rejected == 1  # no retry loop
    with pytest.raises(AriAuthError):
        await stream.wait_connected(1)
    await stream.close()


async def test_server_down_at_start_then_up() -> None:
    port = free_port()
    late = FakeAri(port=port)
    recorder = Recorder()
    stream = make_stream(late, recorder, reconnect_initial_s=0.1, reconnect_max_s=0.4)
    try:
        stream.start()
        with pytest.raises(AriTimeout) as caught:
            await stream.wait_connected(0.3)  # keeps trying in the background, no crash
        assert "not connected within" in str(caught.value)
        await asyncio.sleep(0.7)
        assert stream.connect_failures >= 2 and not stream.connected
        await late.start()
        started = time.monotonic()
        await stream.wait_connected(5)
        assert time.monotonic() - started < 2.0  # backoff capped at reconnect_max_s (0.4 s)
        consumer = await _run_consumer(recorder, stream)
        await late.send(event("StasisStart", channel=channel("1.1")))
        await recorder.wait_for(lambda t: len(t) == 2)
        assert recorder.timeline[0] == ("connected", False)
        assert stream.reconnects == 0
    finally:
        await stream.close()
        await late.stop()
    await asyncio.wait_for(consumer, 2)


async def test_silent_peer_detected_by_ping(fake: FakeAri) -> None:
    recorder = Recorder()
    async with make_stream(fake, recorder, ping_interval_s=0.2, ping_timeout_s=0.2) as stream:
        consumer = await _run_consumer(recorder, stream)
        await stream.wait_connected(5)
        await fake.wait_connections(1)
        fake.current.transport.pause_reading()  # alive TCP, but no pong ever comes back
        await fake.wait_connections(2, timeout=3)
        await recorder.wait_for(lambda t: ("connected", True) in t)
        assert stream.reconnects == 1
        assert "ping" in (stream.last_error or "").lower() or "keepalive" in (stream.last_error or "").lower()
    await asyncio.wait_for(consumer, 2)


async def test_failing_hook_does_not_kill_the_stream(fake: FakeAri) -> None:
    calls: list[bool] = []

    async def hook(is_reconnect: bool) -> None:
        calls.append(is_reconnect)
        raise AriConnectionError("Asterisk went away during resync")

    stream = AriEventStream(fake.base_url, fake.username, fake.password, "hotline", on_connected=hook)
    async with stream:
        await stream.wait_connected(5)
        await fake.wait_connections(1)
        await fake.send(event("StasisEnd", channel=channel("1.1")))
        got = await asyncio.wait_for(anext(stream), 5)
        assert got.type == "StasisEnd" and calls == [False]


async def test_close_while_disconnected_is_prompt() -> None:
    stream = AriEventStream(f"http://127.0.0.1:{free_port()}/ari", "u", "p", "hotline", reconnect_max_s=5.0)
    stream.start()
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await stream.close()
    assert time.monotonic() - started < 1.0
    assert [e async for e in stream] == []
    with pytest.raises(AriError):
        await stream.wait_connected(0.1)


def test_backoff_grows_with_jitter_within_bounds() -> None:
    stream = AriEventStream("http://127.0.0.1:1/ari", "u", "p", "a", reconnect_initial_s=0.2, reconnect_max_s=5)
    for attempt in range(40):
        delays = [stream._backoff(attempt) for _ in range(50)]
        assert all(0.2 <= d <= 5.0 for d in delays)
    assert max(stream._backoff(0) for _ in range(50)) <= 0.2
    assert min(stream._backoff(10) for _ in range(200)) >= 5.0 * 0.7
    assert len({round(stream._backoff(10), 6) for _ in range(20)}) > 1  # jittered


async def test_client_wait_connected_checks_the_app_is_registered(fake: FakeAri) -> None:
    answers = iter([404, 404, 200])

    def rest(path: str) -> tuple[int, str]:
        assert path == "/ari/applications/hotline"
        if next(answers, 200) == 404:
            return 404, json.dumps({"message": "Application not found"})
        return 200, json.dumps({"name": "hotline", "channel_ids": [], "bridge_ids": []})

    fake.rest = rest
    client = AriClient(fake.base_url, fake.username, fake.password, "hotline")
    async with client:
        await client.wait_connected(5)
        assert client.events.connected
    assert client.rest.closed and client.events.closed
