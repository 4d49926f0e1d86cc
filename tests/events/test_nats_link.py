"""The bus across processes over a real nats-server: each side's own EventBus, bridged both ways."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from nats.aio.client import Client as Nats
from pydantic import SecretStr

from events.bus import CallEvent, EventBus, Subscription
from events.nats_link import BusBridge, BusUnavailable, NatsLink
from events.settings import BusSettings
from tests.support.nats import NatsServer, nats_server

pytestmark = pytest.mark.slow  # a real nats-server per test

__all__ = ["nats_server"]

FINAL = {"segment_id": "s1", "speaker": "caller", "start_ms": 0, "end_ms": 900, "confidence": 0.9}


def settings_for(server: NatsServer, token: str | None = None) -> BusSettings:
    return BusSettings(url=server.url, token=SecretStr(token or server.token), connect_timeout_s=2)


@asynccontextmanager
async def bridged(server: NatsServer, name: str) -> AsyncIterator[tuple[EventBus, BusBridge]]:
    bus = EventBus()
    link = NatsLink(settings_for(server), name)
    await link.connect()
    bridge = BusBridge(bus, link)
    await bridge.start()
    try:
        yield bus, bridge
    finally:
        await bridge.stop()
        await link.close()


async def next_of(events: Subscription, type_: str, timeout: float = 5.0) -> CallEvent:
    async with asyncio.timeout(timeout):
        while True:
            event = await events.get()
            if event.type == type_:
                return event


async def test_events_cross_processes_in_order_typed_and_not_echoed(nats_server: NatsServer) -> None:
    async with bridged(nats_server, "voice") as (voice_bus, _), bridged(nats_server, "desk") as (desk_bus, desk):
        with voice_bus.subscribed() as voice_sees, desk_bus.subscribed() as desk_sees:
            voice_bus.emit("call.offered", "c1", operator_id="op1001", queue="zh", ivr_path=["language:1"])
            for i in range(200):
                voice_bus.emit("transcript.final", "c1", **{**FINAL, "segment_id": f"s{i}"}, text=f"第{i}句")
            offered = await next_of(desk_sees, "call.offered")
            assert offered.origin is not None and offered.origin != desk.origin
            assert offered.body.type == "call.offered" and offered.body.ivr_path == ["language:1"]
            segments = [(await next_of(desk_sees, "transcript.final")).body for _ in range(200)]
            assert [s.segment_id for s in segments] == [f"s{i}" for i in range(200)]  # publisher's order kept
            assert segments[7].text == "第7句"

            # the desk's own event (an address confirmation) reaches the voice side once, and is not sent back
            desk_bus.emit(
                "address.confirmed",
                "c1",
                confirmation_id=1,
                confirmed_by="op1001",
                district="海淀区",
                source="confirmed",
            )
            confirmed = await next_of(voice_sees, "address.confirmed")
            assert confirmed.body.type == "address.confirmed" and confirmed.body.district == "海淀区"
            await asyncio.sleep(0.3)
            echoed = [e for e in _pending(desk_sees) if e.type == "address.confirmed"]
            assert len(echoed) == 1 and echoed[0].origin is None  # only the local one
            assert desk.received == 201


async def test_malformed_and_foreign_messages_are_refused_and_the_bridge_goes_on(nats_server: NatsServer) -> None:
    async with bridged(nats_server, "desk") as (bus, bridge):
        raw = Nats()
        await raw.connect(nats_server.url, token=nats_server.token)
        subject = bridge.link.subject("events")
        with bus.subscribed() as events:
            for bad in (
                b"not json",
                b"[]",
                json.dumps({"origin": "x", "event": {"type": "call.exploded", "call_id": "c1"}}).encode(),
                json.dumps({"origin": "x", "event": {"type": "call.ended", "call_id": "c1", "evil": 1}}).encode(),
                b"{" * 300_000,
            ):
                await raw.publish(subject, bad)
            await raw.publish(
                subject, json.dumps({"origin": "x", "event": {"type": "call.ended", "call_id": "c1"}}).encode()
            )
            await raw.flush()
            ended = await next_of(events, "call.ended")
            assert ended.call_id == "c1" and ended.origin == "x"
        await raw.close()
        assert bridge.refused == 5 and bridge.received == 1


async def test_a_wrong_token_or_no_server_is_a_clear_error(nats_server: NatsServer) -> None:
    with pytest.raises(BusUnavailable, match="cannot connect to the bus"):
        await NatsLink(settings_for(nats_server, token="wrong"), "desk").connect()
    nats_server.stop()
    with pytest.raises(BusUnavailable, match="cannot connect to the bus"):
        await NatsLink(settings_for(nats_server), "desk").connect()


async def test_the_bridge_carries_on_after_the_server_restarts(nats_server: NatsServer) -> None:
    async with bridged(nats_server, "voice") as (voice_bus, voice), bridged(nats_server, "desk") as (desk_bus, _):
        with desk_bus.subscribed() as desk_sees:
            voice_bus.emit("call.ended", "before", reason="completed")
            await next_of(desk_sees, "call.ended")
            nats_server.stop()
            nats_server.start()  # same port: both clients reconnect by themselves
            async with asyncio.timeout(10):
                while voice.link.reconnects < 1:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # the desk's reconnection too
            voice_bus.emit("call.ended", "after", reason="completed")
            assert (await next_of(desk_sees, "call.ended", timeout=10)).call_id == "after"


def _pending(events: Subscription) -> list[CallEvent]:
    return [events._queue.get_nowait() for _ in range(events.pending())]
