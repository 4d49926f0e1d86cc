"""Pydantic models of the ARI objects and events the gateway uses.

Unknown fields are ignored (Asterisk adds fields between versions). Timestamps are kept as Asterisk writes
them (``2026-11-02T10:00:00.123+0000``); :func:`parse_ari_time` turns one into an aware ``datetime``.

Events: :func:`parse_event` turns a decoded event into the matching :class:`AriEvent` subclass, or into a
plain :class:`AriEvent` for types not modelled here (``raw`` always keeps the decoded JSON). Every event
names the channels and bridges it concerns (:meth:`AriEvent.channel_ids`, :meth:`AriEvent.bridge_ids`)
so that the gateway can route it to the right call.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from .errors import MalformedEvent

__all__ = [
    "AriEvent",
    "AsteriskInfo",
    "AsteriskSystemInfo",
    "Bridge",
    "BridgeCreated",
    "BridgeDestroyed",
    "BridgeMerged",
    "CallerId",
    "Channel",
    "ChannelCreated",
    "ChannelDestroyed",
    "ChannelDialplan",
    "ChannelDtmfReceived",
    "ChannelEnteredBridge",
    "ChannelHangupRequest",
    "ChannelHold",
    "ChannelLeftBridge",
    "ChannelStateChange",
    "ChannelTalkingFinished",
    "ChannelTalkingStarted",
    "ChannelUnhold",
    "ChannelVarset",
    "Dial",
    "DialplanCep",
    "Endpoint",
    "EndpointStateChange",
    "LiveRecording",
    "Playback",
    "PlaybackContinuing",
    "PlaybackFinished",
    "PlaybackStarted",
    "RecordingFailed",
    "RecordingFinished",
    "RecordingStarted",
    "StasisEnd",
    "StasisStart",
    "parse_ari_time",
    "parse_event",
    "parse_event_text",
]


def parse_ari_time(value: str | None) -> datetime | None:
    """Asterisk's ``2026-11-02T10:00:00.123+0000`` as an aware datetime (None when absent or unreadable)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# --------------------------------------------------------------------------------------------- objects


class CallerId(_Model):
    name: str = ""
    number: str = ""


class DialplanCep(_Model):
    context: str = ""
    exten: str = ""
    priority: int = 0
    app_name: str = ""
    app_data: str = ""


class Channel(_Model):
    id: str
    name: str = ""
    state: str = ""
    protocol_id: str = ""
    caller: CallerId = Field(default_factory=CallerId)
    connected: CallerId = Field(default_factory=CallerId)
    accountcode: str = ""
    dialplan: DialplanCep = Field(default_factory=DialplanCep)
    channelvars: dict[str, str] | None = None
    creationtime: str = ""
    language: str = ""

    @property
    def created_at(self) -> datetime | None:
        return parse_ari_time(self.creationtime)

    @property
    def local_rtp_port(self) -> int | None:
        """Asterisk's RTP port of an ExternalMedia channel (``channelvars.UNICASTRTP_LOCAL_PORT``)."""
        value = (self.channelvars or {}).get("UNICASTRTP_LOCAL_PORT")
        return int(value) if value and value.isdigit() else None


class Bridge(_Model):
    id: str
    technology: str = ""
    bridge_type: str = ""
    bridge_class: str = ""
    creator: str = ""
    name: str = ""
    channels: list[str] = Field(default_factory=list)
    creationtime: str = ""
    video_mode: str | None = None


class Playback(_Model):
    id: str
    media_uri: str = ""
    next_media_uri: str | None = None
    target_uri: str = ""
    language: str | None = None
    state: str = ""

    @property
    def channel_id(self) -> str | None:
        """The channel it plays to, when its target is ``channel:ID``."""
        return _target_id(self.target_uri, "channel:")

    @property
    def bridge_id(self) -> str | None:
        return _target_id(self.target_uri, "bridge:")


class LiveRecording(_Model):
    name: str
    format: str = ""
    target_uri: str = ""
    state: str = ""
    duration: int | None = None
    talking_duration: int | None = None
    silence_duration: int | None = None
    cause: str | None = None

    @property
    def channel_id(self) -> str | None:
        return _target_id(self.target_uri, "channel:")

    @property
    def bridge_id(self) -> str | None:
        return _target_id(self.target_uri, "bridge:")


class Endpoint(_Model):
    technology: str
    resource: str
    state: str | None = None
    channel_ids: list[str] = Field(default_factory=list)


class AsteriskSystemInfo(_Model):
    version: str = ""
    entity_id: str = ""


class AsteriskInfo(_Model):
    """``GET /asterisk/info``: the version is what we use; the other sections are kept raw."""

    system: AsteriskSystemInfo = Field(default_factory=AsteriskSystemInfo)
    build: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    status: dict[str, Any] | None = None

    @property
    def version(self) -> str:
        return self.system.version


def _target_id(uri: str, prefix: str) -> str | None:
    return uri[len(prefix) :] if uri.startswith(prefix) and len(uri) > len(prefix) else None


# ---------------------------------------------------------------------------------------------- events


class AriEvent(_Model):
    """An event from ``/ari/events``. Types not modelled below parse to this class; ``raw`` keeps the JSON."""

    type: str
    application: str = ""
    timestamp: str = ""
    asterisk_id: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)
    _channel_ids: tuple[str, ...] | None = PrivateAttr(default=None)

    @property
    def time(self) -> datetime | None:
        return parse_ari_time(self.timestamp)

    def channel_ids(self) -> list[str]:
        """Channels this event concerns, in a stable order without duplicates.

        ``channel``, ``replace_channel``, ``peer``, Dial's ``caller`` and ``forwarded``, and the channel a
        playback or recording targets (``channel:ID``). For unmodelled event types the same keys are read from
        ``raw``.
        """
        if self._channel_ids is not None:  # the gateway and the call's session both ask: work it out once
            return list(self._channel_ids)
        ids: list[str] = []
        for key in _CHANNEL_KEYS:
            value = self._field(key)
            if isinstance(value, Channel):
                ids.append(value.id)
            elif isinstance(value, dict) and isinstance(value.get("id"), str):
                ids.append(value["id"])
        for key in ("playback", "recording"):
            target = self._target_uri(key)
            channel_id = _target_id(target, "channel:") if target else None
            if channel_id:
                ids.append(channel_id)
        self._channel_ids = tuple(dict.fromkeys(ids))
        return list(self._channel_ids)

    def bridge_ids(self) -> list[str]:
        """Bridges it concerns (``bridge``, ``bridge_from``, a playback/recording on ``bridge:ID``)."""
        ids: list[str] = []
        for key in ("bridge", "bridge_from"):
            value = self._field(key)
            if isinstance(value, Bridge):
                ids.append(value.id)
            elif isinstance(value, dict) and isinstance(value.get("id"), str):
                ids.append(value["id"])
        for key in ("playback", "recording"):
            target = self._target_uri(key)
            bridge_id = _target_id(target, "bridge:") if target else None
            if bridge_id:
                ids.append(bridge_id)
        return list(dict.fromkeys(ids))

    def _field(self, key: str) -> Any:
        if key in type(self).__pydantic_fields__:  # the plain dict (model_fields is a slower descriptor)
            return getattr(self, key)
        return self.raw.get(key) if type(self) is AriEvent else None

    def _target_uri(self, key: str) -> str | None:
        value = self._field(key)
        if isinstance(value, Playback | LiveRecording):
            return value.target_uri
        if isinstance(value, dict) and isinstance(value.get("target_uri"), str):
            return str(value["target_uri"])
        return None


_CHANNEL_KEYS = ("channel", "replace_channel", "peer", "caller", "forwarded")


class StasisStart(AriEvent):
    args: list[str] = Field(default_factory=list)
    channel: Channel
    replace_channel: Channel | None = None


class StasisEnd(AriEvent):
    channel: Channel


class ChannelCreated(AriEvent):
    channel: Channel


class ChannelStateChange(AriEvent):
    channel: Channel


class ChannelDtmfReceived(AriEvent):
    digit: str
    duration_ms: int = 0
    channel: Channel


class ChannelHangupRequest(AriEvent):
    cause: int | None = None
    soft: bool | None = None
    channel: Channel


class ChannelDestroyed(AriEvent):
    cause: int = 0
    cause_txt: str = ""
    channel: Channel


class ChannelVarset(AriEvent):
    variable: str
    value: str = ""
    channel: Channel | None = None  # absent for global variables


class ChannelDialplan(AriEvent):
    channel: Channel
    dialplan_app: str = ""
    dialplan_app_data: str = ""


class ChannelHold(AriEvent):
    channel: Channel
    musicclass: str | None = None


class ChannelUnhold(AriEvent):
    channel: Channel


class ChannelTalkingStarted(AriEvent):
    channel: Channel


class ChannelTalkingFinished(AriEvent):
    channel: Channel
    duration: int = 0


class ChannelEnteredBridge(AriEvent):
    bridge: Bridge
    channel: Channel | None = None


class ChannelLeftBridge(AriEvent):
    bridge: Bridge
    channel: Channel


class BridgeCreated(AriEvent):
    bridge: Bridge


class BridgeDestroyed(AriEvent):
    bridge: Bridge


class BridgeMerged(AriEvent):
    bridge: Bridge
    bridge_from: Bridge


class PlaybackStarted(AriEvent):
    playback: Playback


class PlaybackContinuing(AriEvent):
    playback: Playback


class PlaybackFinished(AriEvent):
    playback: Playback


class RecordingStarted(AriEvent):
    recording: LiveRecording


class RecordingFinished(AriEvent):
    recording: LiveRecording


class RecordingFailed(AriEvent):
    recording: LiveRecording


class Dial(AriEvent):
    peer: Channel
    dialstatus: str = ""
    caller: Channel | None = None
    forward: str | None = None
    forwarded: Channel | None = None
    dialstring: str | None = None


class EndpointStateChange(AriEvent):
    endpoint: Endpoint


EVENT_TYPES: dict[str, type[AriEvent]] = {
    cls.__name__: cls
    for cls in (
        StasisStart,
        StasisEnd,
        ChannelCreated,
        ChannelStateChange,
        ChannelDtmfReceived,
        ChannelHangupRequest,
        ChannelDestroyed,
        ChannelVarset,
        ChannelDialplan,
        ChannelHold,
        ChannelUnhold,
        ChannelTalkingStarted,
        ChannelTalkingFinished,
        ChannelEnteredBridge,
        ChannelLeftBridge,
        BridgeCreated,
        BridgeDestroyed,
        BridgeMerged,
        PlaybackStarted,
        PlaybackContinuing,
        PlaybackFinished,
        RecordingStarted,
        RecordingFinished,
        RecordingFailed,
        Dial,
        EndpointStateChange,
    )
}
"""Event ``type`` → model. Anything else parses to :class:`AriEvent`."""


def parse_event(data: Any) -> AriEvent:
    """The typed event for decoded JSON; raises :class:`MalformedEvent` when it does not fit."""
    if not isinstance(data, dict):
        raise MalformedEvent(f"expected a JSON object, got {type(data).__name__}", text=_short(data))
    event_type = data.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEvent("no 'type'", text=_short(data))
    cls = EVENT_TYPES.get(event_type, AriEvent)
    try:
        event = cls.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
        )
        raise MalformedEvent(f"{event_type}: {problems}", text=_short(data)) from exc
    event.raw = data
    return event


def parse_event_text(text: str | bytes) -> AriEvent:
    """Decode one WebSocket message and parse it (:class:`MalformedEvent` for bad JSON too)."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        shown = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        raise MalformedEvent(f"not JSON: {exc}", text=shown[:2000]) from exc
    return parse_event(data)


def _short(data: Any, limit: int = 2000) -> str:
    try:
        text = json.dumps(data, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(data)
    return text[:limit]
