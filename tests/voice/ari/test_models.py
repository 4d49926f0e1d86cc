"""Event parsing and routing keys of the ARI models."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import pytest

from voice.ari import (
    AriEvent,
    AriNotFound,
    AsteriskInfo,
    Bridge,
    BridgeDestroyed,
    Channel,
    ChannelDestroyed,
    ChannelEnteredBridge,
    ChannelVarset,
    Dial,
    MalformedEvent,
    PlaybackFinished,
    StasisStart,
    error_for_status,
    events_url,
    normalize_base_url,
    parse_event,
    parse_event_text,
)

from .fake_ari import channel, event


def test_stasis_start_with_replace_channel() -> None:
    ev = parse_event(event("StasisStart", args=["a", "b"], channel=channel("new"), replace_channel=channel("old"), x=1))
    assert isinstance(ev, StasisStart)
    assert ev.args == ["a", "b"] and ev.channel.dialplan.app_data == "hotline"
    assert ev.channel_ids() == ["new", "old"]
    assert ev.time == datetime(2026, 11, 2, 10, 0, 1, tzinfo=UTC)
    assert ev.channel.created_at is not None
    assert ev.raw["x"] == 1


def test_dial_names_caller_and_peer() -> None:
    ev = parse_event(event("Dial", peer=channel("op"), caller=channel("in"), dialstatus="ANSWER", dialstring="x"))
    assert isinstance(ev, Dial) and ev.dialstatus == "ANSWER"
    assert ev.channel_ids() == ["op", "in"]


def test_playback_routes_to_its_target() -> None:
    pb = {"id": "p1", "media_uri": "sound:x", "target_uri": "channel:1.5", "state": "done"}
    ev = parse_event(event("PlaybackFinished", playback=pb))
    assert isinstance(ev, PlaybackFinished) and ev.channel_ids() == ["1.5"] and ev.bridge_ids() == []
    on_bridge = parse_event(event("PlaybackStarted", playback={**pb, "target_uri": "bridge:b1"}))
    assert on_bridge.channel_ids() == [] and on_bridge.bridge_ids() == ["b1"]


def test_bridge_events() -> None:
    bridge = {"id": "b1", "technology": "simple_bridge", "bridge_type": "mixing", "channels": ["1.1"]}
    entered = parse_event(event("ChannelEnteredBridge", bridge=bridge, channel=channel("1.1")))
    assert isinstance(entered, ChannelEnteredBridge) and entered.bridge.channels == ["1.1"]
    assert entered.channel_ids() == ["1.1"] and entered.bridge_ids() == ["b1"]
    destroyed = parse_event(event("BridgeDestroyed", bridge=bridge))
    assert isinstance(destroyed, BridgeDestroyed) and destroyed.channel_ids() == []


def test_destroyed_and_varset() -> None:
    ev = parse_event(event("ChannelDestroyed", cause=16, cause_txt="Normal Clearing", channel=channel("1.1")))
    assert isinstance(ev, ChannelDestroyed) and ev.cause == 16 and ev.cause_txt == "Normal Clearing"
    glob = parse_event(event("ChannelVarset", variable="G", value="1"))
    assert isinstance(glob, ChannelVarset) and glob.channel is None and glob.channel_ids() == []


def test_unknown_type_keeps_raw_and_routes() -> None:
    ev = parse_event(event("ChannelToneDetected", channel=channel("9.9")))
    assert type(ev) is AriEvent and ev.type == "ChannelToneDetected"
    assert ev.channel_ids() == ["9.9"] and ev.raw["channel"]["id"] == "9.9"


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"application": "hotline"}',
        '{"type": "StasisStart", "application": "hotline"}',
        '{"type": "ChannelDtmfReceived", "channel": {"id": "1"}}',
    ],
)
def test_malformed(text: str) -> None:
    with pytest.raises(MalformedEvent) as caught:
        parse_event_text(text)
    assert caught.value.text
    assert str(caught.value).startswith("ARI malformed event: ")


def test_objects_ignore_extra_fields() -> None:
    ch = Channel.model_validate({**channel("1"), "channelvars": {"UNICASTRTP_LOCAL_PORT": "10010"}, "new": 1})
    assert ch.local_rtp_port == 10010
    assert Bridge.model_validate({"id": "b", "whatever": True}).channels == []
    info = AsteriskInfo.model_validate({"system": {"version": "22.10.1", "entity_id": "x"}, "build": {}})
    assert info.version == "22.10.1"


def test_urls() -> None:
    assert normalize_base_url("http://h:8088") == "http://h:8088/ari"
    assert normalize_base_url("http://h:8088/ari/") == "http://h:8088/ari"
    assert events_url("https://h:8089/ari", "hot line") == "wss://h:8089/ari/events?app=hot+line&subscribeAll=false"
    with pytest.raises(ValueError):
        normalize_base_url("h:8088")


def test_errors_pickle_and_read_well() -> None:
    error = error_for_status(404, "Channel not found", method="DELETE", path="/channels/x")
    assert isinstance(error, AriNotFound)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is AriNotFound and str(again) == "ARI DELETE /channels/x → 404 Channel not found"
    malformed = pickle.loads(pickle.dumps(MalformedEvent("bad", text="{")))
    assert malformed.text == "{"
