"""The ARI client against a real Asterisk 22 (fixtures from tests/support/asterisk_fixture.py)."""

from __future__ import annotations

import asyncio
import errno
import socket
import statistics
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.support.asterisk_fixture import AsteriskFactory
from voice.ari import (
    AriAuthError,
    AriClient,
    AriEvent,
    AriNotFound,
    AriRestClient,
    ChannelDestroyed,
    StasisEnd,
    StasisStart,
)
from voice.asterisk import instance as instance_module
from voice.asterisk.instance import AsteriskInstance

pytestmark = pytest.mark.slow


def _app() -> str:
    return f"ari-test-{uuid.uuid4().hex[:8]}"


def _client(instance: AsteriskInstance, app: str, password: str | None = None) -> AriClient:
    return AriClient(
        instance.ari_url,
        instance.ari_username,
        password if password is not None else instance.ari_password,
        app,
        instance.settings.ari,
    )


@pytest.fixture
async def rest(asterisk: AsteriskInstance) -> AsyncIterator[AriRestClient]:
    async with AriRestClient(asterisk.ari_url, asterisk.ari_username, asterisk.ari_password, 5.0) as client:
        yield client


async def test_asterisk_info_and_get_latency(rest: AriRestClient) -> None:
    info = await rest.asterisk_info()
    assert info.version.startswith("22."), info.version
    await rest.ping()
    timings = []
    for _ in range(200):
        started = time.perf_counter()
        await rest.list_channels()
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    median, p95 = statistics.median(timings), timings[int(len(timings) * 0.95)]
    print(f"\nARI GET /channels over a kept-alive connection: median {median:.2f} ms, p95 {p95:.2f} ms")
    assert median < 50


async def test_bridge_create_list_destroy(rest: AriRestClient) -> None:
    bridge_id = f"test-{uuid.uuid4().hex[:8]}"
    bridge = await rest.create_bridge(bridge_id, type="mixing", name="ari test")
    assert bridge.id == bridge_id and bridge.bridge_type == "mixing" and bridge.channels == []
    assert bridge_id in [b.id for b in await rest.list_bridges()]
    assert (await rest.get_bridge(bridge_id)).name == "ari test"
    await rest.destroy_bridge(bridge_id)
    for _ in range(50):  # Asterisk's bridge thread removes it just after answering the DELETE
        if bridge_id not in [b.id for b in await rest.list_bridges()]:
            break
        await asyncio.sleep(0.01)
    assert bridge_id not in [b.id for b in await rest.list_bridges()]
    with pytest.raises(AriNotFound) as caught:
        await rest.destroy_bridge(bridge_id)
    assert caught.value.message == "Bridge not found"


async def test_missing_channel_is_not_found(rest: AriRestClient) -> None:
    with pytest.raises(AriNotFound) as caught:
        await rest.get_channel("no-such-channel")
    assert str(caught.value) == "ARI GET /channels/no-such-channel → 404 Channel not found"
    with pytest.raises(AriNotFound) as caught:
        await rest.answer("no-such-channel")
    assert str(caught.value) == "ARI POST /channels/no-such-channel/answer → 404 Channel not found"


def _udp_port() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock, int(sock.getsockname()[1])


async def _next(stream: AsyncIterator[AriEvent], wanted: type[AriEvent], within_s: float = 5.0) -> AriEvent:
    async with asyncio.timeout(within_s):
        async for event in stream:
            if isinstance(event, wanted):
                return event
    raise AssertionError(f"stream ended before {wanted.__name__}")


async def test_websocket_connects_and_delivers_events(asterisk: AsteriskInstance) -> None:
    app = _app()
    hooks: list[bool] = []

    async def on_connected(is_reconnect: bool) -> None:
        hooks.append(is_reconnect)

    sink, port = _udp_port()
    try:
        async with _client(asterisk, app) as ari:
            ari.on_connected = on_connected
            started = time.perf_counter()
            await ari.wait_connected(5)
            print(f"\nevents WebSocket up and app registered in {(time.perf_counter() - started) * 1000:.1f} ms")
            assert ari.events.connected and await ari.rest.application_exists(app)

            # A channel that enters our Stasis app without any SIP: ExternalMedia.
            channel = await ari.rest.external_media(app, f"127.0.0.1:{port}", "ulaw")
            assert channel.local_rtp_port is not None
            start = await _next(ari.events, StasisStart)
            assert hooks == [False]  # on_connected ran before the first event
            assert start.channel_ids() == [channel.id] and start.application == app
            assert (await ari.rest.get_channel(channel.id)).id == channel.id
            await ari.rest.set_variable(channel.id, "HOTLINE_TEST", "yes")
            assert await ari.rest.get_variable(channel.id, "HOTLINE_TEST") == "yes"
            await ari.rest.hangup(channel.id)
            end = await _next(ari.events, StasisEnd)
            assert end.channel_ids() == [channel.id]
            destroyed = await _next(ari.events, ChannelDestroyed)
            assert isinstance(destroyed, ChannelDestroyed) and destroyed.channel.id == channel.id
            with pytest.raises(AriNotFound):
                await ari.rest.hangup(channel.id)
        async with AriRestClient(asterisk.ari_url, asterisk.ari_username, asterisk.ari_password) as rest:
            for _ in range(50):
                if not await rest.application_exists(app):
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("app still registered after close()")
    finally:
        sink.close()


async def test_wrong_password_raises_auth_error(asterisk: AsteriskInstance) -> None:
    async with _client(asterisk, _app(), password="wrong-password") as ari:
        started = time.monotonic()
        with pytest.raises(AriAuthError) as caught:
            await ari.wait_connected(10)
        assert time.monotonic() - started < 2.0
        assert caught.value.status == 401
        await asyncio.sleep(0.5)
        assert ari.events.connect_failures == 0 and ari.events.connects == 0  # gave up, no retry loop
        with pytest.raises(AriAuthError):
            await ari.rest.asterisk_info()


def _port_in_use_like_asterisk(kind: int, port: int, host: str = "127.0.0.1") -> bool:
    """The instance's port probe, with SO_REUSEADDR on TCP as Asterisk binds its own listener.

    Without it, the TIME_WAIT connections that a stopping Asterisk leaves on its HTTP port (it closes ARI's
    WebSocket and kept-alive connections first) make the probe report the port busy for 60 s, although
    Asterisk itself could bind it: a restart on the same ports fails.
    """
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


async def test_restart_reconnects_and_calls_on_connected(
    asterisk_factory: AsteriskFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(instance_module, "_port_in_use", _port_in_use_like_asterisk)
    instance = await asterisk_factory()
    app = _app()
    hooks: list[tuple[bool, float]] = []
    reconnected = asyncio.Event()

    async def on_connected(is_reconnect: bool) -> None:
        hooks.append((is_reconnect, time.monotonic()))
        if is_reconnect:
            # what the gateway does here: resynchronise from Asterisk's state
            await ari.rest.list_channels()
            await ari.rest.list_bridges()
            reconnected.set()

    async with _client(instance, app) as ari:
        ari.on_connected = on_connected
        await ari.wait_connected(5)
        consumer = asyncio.create_task(_drain(ari))
        await ari.rest.asterisk_info()  # leaves a kept-alive connection in the pool

        stop_started = time.monotonic()
        await instance.stop()
        stopped = time.monotonic()
        await asyncio.sleep(0.5)
        assert not ari.events.connected
        await instance.start()
        ready = time.monotonic()
        await asyncio.wait_for(reconnected.wait(), 15)
        await ari.wait_connected(5)
        back = time.monotonic()
        info = await ari.rest.asterisk_info()  # the pool's stale connection is not a problem
        assert info.version.startswith("22.")
        assert [h[0] for h in hooks] == [False, True]
        assert ari.events.reconnects == 1
        print(
            f"\nAsterisk stop {stopped - stop_started:.2f} s, "
            f"start to ARI ready {ready - stopped - 0.5:.2f} s; "
            f"events reconnected + app registered {back - ready:.2f} s after ARI was ready "
            f"({back - stop_started:.2f} s after the stop began)"
        )
        assert back - ready < instance.settings.ari.reconnect_max_s + 1.0
    await asyncio.wait_for(consumer, 5)


async def _drain(ari: AriClient) -> None:
    async for _ in ari.events:
        pass
