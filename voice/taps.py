"""Live transcription of a call: each party's voice is tapped out of Asterisk and fed to a recognition stream.

A tap is a snoop channel on the party's channel (`spy=in`: only what that party says) bridged to an ExternalMedia
channel that sends slin16 RTP to a UDP port of ours. Segments coming back become `transcript.partial` /
`transcript.final` / `transcript.gap` / `transcript.status` events on the bus; what the words mean (places, the
ticket) is for the assistants that read the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

import structlog

from asr.engine import AsrEngine, AsrStream, Segment
from events.contract import (
    CallEventModel,
    CallFields,
    Speaker,
    TranscriptAlternative,
    TranscriptFinal,
    TranscriptGap,
    TranscriptPartial,
    TranscriptStatus,
)
from voice.ari import AriRestClient
from voice.legs import Leg
from voice.rtp import RtpPortPool, RtpReceiver

log = structlog.get_logger(__name__)

FINISH_TIMEOUT_S = 15.0  # the last utterance's decode, at the end of a call


class TappedCall(Protocol):
    """What a tap needs of its call (CallSession is one): its channels and bridges, its log and its events."""

    call_id: str
    log: structlog.typing.FilteringBoundLogger

    def about(self) -> CallFields: ...

    def publish(self, event: CallEventModel) -> None: ...

    async def open_leg(self, role: str, create: Callable[[str], Awaitable[object]], timeout_s: float = 5.0) -> Leg: ...

    async def drop_leg(self, leg: Leg) -> None: ...

    async def own_bridge(self, bridge_id: str, channel_ids: Sequence[str]) -> None: ...

    async def destroy_bridge(self, bridge_id: str) -> None: ...


@dataclass(eq=False)
class Tap:
    speaker: str
    channel_id: str  # the tapped party's channel
    port: int
    stream: AsrStream
    receiver: RtpReceiver
    transport: asyncio.DatagramTransport
    consumer: asyncio.Task[None] | None = None
    legs: list[Leg] = field(default_factory=list)
    bridge_id: str | None = None


class Transcriber:
    _ids = itertools.count(1)

    def __init__(
        self,
        engine: AsrEngine,
        ports: RtpPortPool,
        rest: AriRestClient,
        app: str,
        *,
        phrases: Sequence[str] = (),
        by_speaker: Mapping[str, AsrEngine] | None = None,
    ) -> None:
        self.engine = engine
        self.by_speaker = dict(by_speaker or {})  # a party with a recogniser of its own (asr.by_speaker)
        self.rest, self.app = rest, app
        self.ports = ports
        self.phrases = tuple(phrases)
        self._taps: dict[str, list[Tap]] = {}  # call id -> its taps

    def engine_for(self, speaker: str) -> AsrEngine:
        return self.by_speaker.get(speaker, self.engine)

    def taps_of(self, call_id: str) -> list[Tap]:
        return list(self._taps.get(call_id, ()))

    async def tap(self, session: TappedCall, channel_id: str, speaker: str) -> Tap | None:
        """Start transcribing what `channel_id` says. A failure is logged and the call goes on untranscribed."""
        sock = self.ports.acquire()
        port = sock.getsockname()[1]
        engine = self.engine_for(speaker)
        stream = engine.open_stream(f"{session.call_id}:{speaker}:{next(self._ids)}", speaker, self.phrases)
        loop = asyncio.get_running_loop()
        transport, receiver = await loop.create_datagram_endpoint(lambda: RtpReceiver(stream.push), sock=sock)
        tap = Tap(speaker, channel_id, port, stream, receiver, transport)
        self._taps.setdefault(session.call_id, []).append(tap)
        tap.consumer = asyncio.ensure_future(self._publish(session, tap))
        try:
            await self._connect(session, tap)
        except Exception as exc:  # a failed tap is never worth failing the call for
            session.log.warning("tap.failed", speaker=speaker, error=repr(exc))
            await self.untap(session, tap, flush=False)
            return None
        session.log.info("tap.started", speaker=speaker, port=port)
        return tap

    async def _connect(self, session: TappedCall, tap: Tap) -> None:
        rest, app = self.rest, self.app
        snoop = await session.open_leg(
            "snoop", lambda leg_id: rest.snoop(tap.channel_id, app, spy="in", snoop_id=leg_id, app_args=["tap"])
        )
        tap.legs.append(snoop)
        host = f"{self.ports.host}:{tap.port}"
        media = await session.open_leg(
            "media", lambda leg_id: rest.external_media(app, host, "slin16", channel_id=leg_id, data="tap")
        )
        tap.legs.append(media)
        tap.bridge_id = f"hotline-tap-{media.channel_id}"
        await session.own_bridge(tap.bridge_id, [snoop.channel_id, media.channel_id])

    async def untap_channel(self, session: TappedCall, channel_id: str) -> None:
        for tap in self.taps_of(session.call_id):
            if tap.channel_id == channel_id:
                await self.untap(session, tap)

    async def untap_all(self, session: TappedCall) -> None:
        await asyncio.gather(*(self.untap(session, tap) for tap in self.taps_of(session.call_id)))

    async def untap(self, session: TappedCall, tap: Tap, *, flush: bool = True) -> None:
        """Stop the tap; with `flush`, what was said up to now still becomes a final."""
        taps = self._taps.get(session.call_id, [])
        if tap not in taps:
            return
        taps.remove(tap)
        if not taps:
            self._taps.pop(session.call_id, None)
        for leg in tap.legs:
            await session.drop_leg(leg)
        if tap.bridge_id is not None:
            await session.destroy_bridge(tap.bridge_id)
        tap.receiver.reorderer.flush()
        tap.transport.close()
        self.ports.release(tap.port)
        if flush:
            try:
                await asyncio.wait_for(tap.stream.finish(), FINISH_TIMEOUT_S)
            except TimeoutError:
                session.log.warning("tap.flush_timeout", speaker=tap.speaker)
        tap.stream.close()
        if tap.consumer is not None:
            if flush:  # let the last final go out
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(tap.consumer), 5.0)
            tap.consumer.cancel()
        stats = tap.receiver.stats
        session.log.info("tap.stopped", speaker=tap.speaker, packets=stats.received, lost=stats.lost, late=stats.late)

    async def _publish(self, session: TappedCall, tap: Tap) -> None:
        async for segment in tap.stream.segments():
            try:
                await self._publish_segment(session, tap, segment)
            except Exception:  # one bad segment must not stop the transcript
                session.log.exception("transcript.publish_failed", segment=segment.segment_id)

    async def _publish_segment(self, session: TappedCall, tap: Tap, segment: Segment) -> None:
        about, speaker = session.about(), cast(Speaker, tap.speaker)
        segment_id, start_ms = segment.segment_id, segment.start_ms
        if segment.kind == "partial":
            event: CallEventModel = TranscriptPartial(
                **about, segment_id=segment_id, speaker=speaker, start_ms=start_ms, text=segment.text
            )
        elif segment.kind == "status":
            assert segment.status is not None
            event = TranscriptStatus(**about, speaker=speaker, state=segment.status, reason=segment.error)
        elif segment.kind == "gap":
            event = TranscriptGap(
                **about,
                segment_id=segment_id,
                speaker=speaker,
                start_ms=start_ms,
                end_ms=segment.end_ms,
                error=segment.error,
            )
        else:  # a final, or a second reading of one: the same fields
            line = {
                "segment_id": segment_id,
                "speaker": speaker,
                "start_ms": start_ms,
                "text": segment.text,
                "end_ms": segment.end_ms,
                "confidence": round(segment.confidence, 3),
            }
            if segment.kind == "alternative":
                event = TranscriptAlternative(**about, **line, suggested=segment.suggested)
            else:
                event = TranscriptFinal(**about, **line)
        session.publish(event)
