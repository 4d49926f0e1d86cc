"""One caller's call: the state the gateway keeps for it and the operations a call script (the IVR) uses.

Events for the call reach `handle_event` in stream order and never block; the script runs in its own task and
awaits futures those events resolve. When the caller hangs up, the script task is cancelled wherever it waits,
and `run` cleans up everything the call owned (playbacks, extra channels, bridges).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog

from events import contract
from events.bus import EventBus
from events.contract import CallEventModel, CallFields
from ivr_flows.port import GatherResult, QueueAnnouncer, RouteOutcome, RouteRequest
from voice.ari import (
    AriBadRequest,
    AriClient,
    AriConflict,
    AriConnectionError,
    AriError,
    AriEvent,
    AriNotFound,
    AriUnprocessable,
    Channel,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    PlaybackFinished,
    PlaybackStarted,
    SpyDirection,
    StasisEnd,
    StasisStart,
)
from voice.digits import DigitBuffer
from voice.legs import Leg, LegGone
from voice.metrics import GatewayMetrics

log = structlog.get_logger(__name__)


class CallEnded(Exception):
    """The caller's channel is gone: the script cannot go on."""


class PromptMissing(Exception):
    """A `prompt:NAME` media reference names no file in the prompts folder."""


CallHandler = Callable[["CallSession"], Coroutine[Any, Any, None]]

_GONE = (AriNotFound, AriConflict, AriUnprocessable)
_T = TypeVar("_T")


LegRegistry = Callable[[str, "CallSession | None"], None]


class CallRouting(Protocol):
    """Queues and operators, as a call uses them (voice.routing.RoutingServices)."""

    async def route(self, call: CallSession, request: RouteRequest, announcer: QueueAnnouncer) -> RouteOutcome: ...

    async def transfer(self, call: CallSession, target: str) -> bool: ...


class CallRecording(Protocol):
    """Recording a call's conversation (voice.recording.CallRecorder)."""

    async def start(self, call_id: str, bridge_id: str) -> str | None: ...

    def finish(self, call: CallFields, name: str) -> None: ...


class CallTranscriber(Protocol):
    """Live transcription of a call's channels (voice.taps.Transcriber)."""

    async def tap(self, call: CallSession, channel_id: str, speaker: str) -> object: ...

    async def untap_channel(self, call: CallSession, channel_id: str) -> None: ...

    async def untap_all(self, call: CallSession) -> None: ...


@dataclass
class CallContext:
    """What every call shares: the ARI client, metrics, prompts, and the gateway's routing services."""

    client: AriClient
    metrics: GatewayMetrics
    prompts_dir: Path
    register_leg: LegRegistry  # tells the gateway which call a channel we created belongs to
    default_language: str = "zh"
    moh_class: str = "default"
    services: CallRouting | None = None  # queues and operators, once routing is configured
    bus: EventBus = field(default_factory=EventBus)
    transcriber: CallTranscriber | None = None  # live transcription, when an ASR engine is configured
    recorder: CallRecording | None = None  # the conversation recorded, when recording is on


class CallSession:
    _playback_ids = itertools.count(1)
    _leg_ids = itertools.count(1)

    def __init__(self, channel: Channel, context: CallContext) -> None:
        self.channel_id = channel.id
        self.call_id = channel.id
        self.caller_number = channel.caller.number
        self.dialed_number = channel.dialplan.exten
        self.language = context.default_language
        self.started_at = time.monotonic()
        self.outcome: str | None = None
        self.context = context
        self._rest = context.client.rest
        self._metrics = context.metrics
        self._prompts_dir = context.prompts_dir
        self._legs: dict[str, Leg] = {}
        self._gone_event = asyncio.Event()
        self._bridges: set[str] = set()
        self._moh = False
        self._digits = DigitBuffer()
        self._playbacks: dict[str, asyncio.Future[None]] = {}
        self._script: asyncio.Task[None] | None = None
        self._gone = False
        self._gone_reason = "caller_hangup"
        self._end_reason: str | None = None  # we ended the call for this reason (the desk's hang-up)
        self._hung_up_by_us = False
        self._hangup_sent = False  # Asterisk took our DELETE: a second one races its teardown (404 or 503)
        self._recording: str | None = None  # the name Asterisk records the conversation under
        self._answered = False
        self._key_mark: float | None = None  # last digit of an entry, waiting for the next prompt to start
        self.log = log.bind(call_id=self.call_id, caller=self.caller_number)

    # ---- events (called by the gateway in stream order; must not block) ----

    def handle_event(self, event: AriEvent) -> None:
        for channel_id in event.channel_ids():
            leg = self._legs.get(channel_id)
            if leg is not None:
                self._handle_leg_event(leg, event)
                return
        if isinstance(event, ChannelDtmfReceived) and event.channel.id == self.channel_id:
            self._digits.push(event.digit)
        elif isinstance(event, PlaybackStarted):
            if self._key_mark is not None:
                self._metrics.dtmf_to_prompt_seconds.observe(time.monotonic() - self._key_mark)
                self._key_mark = None
        elif isinstance(event, PlaybackFinished):
            future = self._playbacks.pop(event.playback.id, None)
            if future is not None and not future.done():
                future.set_result(None)
        elif isinstance(event, StasisEnd | ChannelDestroyed | ChannelHangupRequest) and (
            event.channel.id == self.channel_id
        ):
            self.channel_gone()

    def _handle_leg_event(self, leg: Leg, event: AriEvent) -> None:
        if isinstance(event, StasisStart):
            leg.on_answered()
        elif isinstance(event, ChannelDestroyed):
            leg.on_gone(event.cause_txt)
        elif isinstance(event, StasisEnd | ChannelHangupRequest):
            leg.on_gone("hangup")

    async def end(self, reason: str) -> None:
        """Hang the caller up for a reason of ours (`operator_hangup`, `supervisor_hangup`): the channel's end then
        stops the script like a hang-up, and the call's outcome says who ended it."""
        self._end_reason = reason
        self.log.info("call.end_requested", reason=reason)
        with contextlib.suppress(AriError):
            await self._rest.hangup(self.channel_id)

    def channel_gone(self, reason: str = "caller_hangup") -> None:
        """The caller's channel left us (hang-up, or Asterisk lost it): stop the script wherever it waits."""
        if self._gone:
            return
        self._gone = True
        self._gone_reason = self._end_reason or reason
        self._gone_event.set()
        for future in self._playbacks.values():
            future.cancel()
        self._playbacks.clear()
        if self._script is not None and not self._script.done() and not self._hung_up_by_us:
            self._script.cancel()

    @property
    def gone(self) -> bool:
        return self._gone

    def pending_playbacks(self) -> list[str]:
        return list(self._playbacks)

    def playback_lost(self, playback_id: str) -> None:
        """The playback no longer exists in Asterisk (its Finished event was lost during a reconnect)."""
        future = self._playbacks.pop(playback_id, None)
        if future is not None and not future.done():
            future.set_result(None)

    # ---- operations for the call script ----

    async def answer(self) -> None:
        await self._ari(self._rest.answer(self.channel_id))
        self._answered = True
        self._metrics.answer_seconds.observe(time.monotonic() - self.started_at)
        self.log.info("call.answered")

    def resolve_media(self, media: str) -> str:
        """`prompt:NAME` → our own prompt file (`sound:` with its absolute path, no extension)."""
        if not media.startswith("prompt:"):
            return media
        name = media.removeprefix("prompt:")
        if not any(self._prompts_dir.glob(f"{name}.*")):
            raise PromptMissing(f"prompt {name!r} has no file in {self._prompts_dir}")
        return f"sound:{(self._prompts_dir / name).resolve()}"

    async def play(self, media: str | Sequence[str], *, interruptible: bool = False) -> bool:
        """Play media and wait for its end. Returns True if a key press cut it short (the key stays buffered)."""
        items = [media] if isinstance(media, str) else list(media)
        uris = [self.resolve_media(item) for item in items]
        if interruptible and self._digits.pending():
            return True
        playback_id = f"{self.call_id}.pb{next(self._playback_ids)}"
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._playbacks[playback_id] = finished
        try:
            await self._ari(self._rest.play(self.channel_id, uris, playback_id=playback_id))
        except BaseException:
            self._playbacks.pop(playback_id, None)
            raise
        if not interruptible:
            await finished
            return False
        key = asyncio.ensure_future(self._digits.wait_any())
        try:
            await asyncio.wait({finished, key}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            key.cancel()
        if finished.done():
            finished.result()  # raises CancelledError if the caller left meanwhile
            return False
        self._playbacks.pop(playback_id, None)
        with contextlib.suppress(AriNotFound):  # it may have ended on its own meanwhile
            await self._rest.stop_playback(playback_id)
        return True

    async def gather(
        self,
        max_digits: int,
        first_timeout: float,
        inter_digit_timeout: float,
        total_timeout: float,
        terminator: str = "",
    ) -> GatherResult:
        result = await self._digits.gather(max_digits, first_timeout, inter_digit_timeout, total_timeout, terminator)
        if result.last_key_at is not None:
            self._key_mark = result.last_key_at
        self.log.info("call.digits", digits=result.digits, reason=result.reason)
        return result

    def flush_digits(self) -> None:
        self._digits.clear()

    def set_language(self, language: str) -> None:
        self.log.info("call.language", language=language)
        self.language = language
        self.log = self.log.bind(language=language)

    async def start_moh(self) -> None:
        await self._ari(self._rest.start_moh(self.channel_id, self.context.moh_class))
        self._moh = True

    async def stop_moh(self) -> None:
        if self._moh:
            self._moh = False
            await self._ari(self._rest.stop_moh(self.channel_id))

    async def dial(
        self, endpoint: str, role: str, timeout_s: float, on_ringing: Callable[[], None] | None = None
    ) -> Leg | None:
        """Call another party for this call; the answered leg, or None if it was busy, unreachable or rang out.

        `on_ringing` runs once Asterisk accepted the call attempt (the far end is being called)."""
        leg = Leg(f"hotline-{role}-{self.call_id}-{next(self._leg_ids)}", role, endpoint)
        self._legs[leg.channel_id] = leg
        self.context.register_leg(leg.channel_id, self)
        try:
            await self._rest.originate(
                endpoint,
                self.context.client.app,
                app_args=[role, self.call_id],
                channel_id=leg.channel_id,
                caller_id=self.caller_number or None,
                timeout_s=max(1, round(timeout_s)),
            )
            if on_ringing is not None:
                on_ringing()
            answered = await asyncio.wait_for(leg.wait_answered(), timeout_s + 5)
        except (AriError, TimeoutError) as exc:
            self.log.warning("call.dial_failed", endpoint=endpoint, error=str(exc))
            answered = False
        if not answered:
            cause = leg.ended.result() if leg.ended.done() else "no answer"
            self.log.info("call.leg_not_answered", role=role, endpoint=endpoint, cause=cause)
            await self.drop_leg(leg)
            return None
        self.log.info("call.leg_answered", role=role, endpoint=endpoint)
        return leg

    async def open_leg(self, role: str, create: Callable[[str], Awaitable[object]], timeout_s: float = 5.0) -> Leg:
        """A channel we create ourselves (snoop, ExternalMedia), ready once it entered Stasis: Asterisk refuses
        to bridge it before (422), and the HTTP reply can come first (DESIGN §5)."""
        leg = Leg(f"hotline-{role}-{self.call_id}-{next(self._leg_ids)}", role, role)
        self._legs[leg.channel_id] = leg
        self.context.register_leg(leg.channel_id, self)
        try:
            await create(leg.channel_id)
            if not await asyncio.wait_for(leg.wait_answered(), timeout_s):
                raise LegGone(f"{role} channel vanished before entering Stasis")
        except BaseException:
            await self.drop_leg(leg)
            raise
        return leg

    async def own_bridge(self, bridge_id: str, channel_ids: Sequence[str]) -> None:
        """A bridge of this call's own (destroyed at its end) holding these channels."""
        self._bridges.add(bridge_id)  # before the request, as in bridge_with
        await self._rest.create_bridge(bridge_id=bridge_id, type="mixing", name=bridge_id)
        await self._rest.add_to_bridge(bridge_id, list(channel_ids))

    async def join_bridge(self, bridge_id: str, channel_ids: Sequence[str]) -> None:
        """Add channels to a bridge of this call's own (see own_bridge)."""
        await self._rest.add_to_bridge(bridge_id, list(channel_ids))

    async def snoop(self, channel_id: str, spy: SpyDirection, whisper: SpyDirection) -> Leg:
        """A snoop channel on one of this call's channels, in Stasis: it hears the `spy` direction of that channel
        and what is played into it goes into the `whisper` direction (`out`: that party hears it; `in`: as if
        that party said it, so the others hear it)."""
        rest, app = self._rest, self.context.client.app
        return await self.open_leg(
            "spy",
            lambda leg_id: rest.snoop(channel_id, app, spy=spy, whisper=whisper, snoop_id=leg_id, app_args=["spy"]),
        )

    async def destroy_bridge(self, bridge_id: str) -> None:
        if bridge_id in self._bridges:
            self._bridges.discard(bridge_id)
            with contextlib.suppress(AriError):
                await self._rest.destroy_bridge(bridge_id)

    async def drop_leg(self, leg: Leg) -> None:
        if not leg.ended.done():
            with contextlib.suppress(AriError):
                await self._rest.hangup(leg.channel_id)
        self._legs.pop(leg.channel_id, None)
        self.context.register_leg(leg.channel_id, None)
        # Its StasisEnd may come after we stop listening for it (the hang-up's reply can come first): whoever
        # waits for this leg's end (a conversation waiting out a transferred operator) must not wait forever.
        leg.on_gone("dropped")

    async def bridge_with(self, *legs: Leg) -> str:
        """One mixing bridge holding the caller and these legs (three parties switch it to softmix)."""
        bridge_id = f"hotline-br-{self.call_id}"
        if bridge_id not in self._bridges:
            # Ours before the request: a hang-up while it is in flight cancels us, and the clean-up must still
            # destroy the bridge Asterisk made (found leaked when the caller hung up just as the operator answered).
            self._bridges.add(bridge_id)
            try:
                await self._ari(
                    self._rest.create_bridge(bridge_id=bridge_id, type="mixing", name=f"call {self.call_id}")
                )
            except AriError:
                self._bridges.discard(bridge_id)  # refused: nothing to destroy, and a later call may create it
                raise
            await self._ari(self._rest.add_to_bridge(bridge_id, [self.channel_id]))
        if legs:
            try:
                await self._rest.add_to_bridge(bridge_id, [leg.channel_id for leg in legs])
            except (AriBadRequest, *_GONE) as exc:  # 400 "Channel not found": it hung up as it answered
                raise LegGone(str(exc)) from exc
        return bridge_id

    async def route(self, request: RouteRequest, announcer: QueueAnnouncer) -> RouteOutcome:
        """Queue for an operator and talk (see voice.routing); needs routing services from the gateway."""
        if self.context.services is None:
            raise RuntimeError("routing is not configured for this gateway")
        return await self.context.services.route(self, request, announcer)

    async def transfer(self, target: str) -> bool:
        if self.context.services is None:
            raise RuntimeError("routing is not configured for this gateway")
        return await self.context.services.transfer(self, target)

    async def transcribe(self, *parties: tuple[str, str]) -> None:
        """Start live transcription of each (speaker, channel id); a no-op without an ASR engine."""
        transcriber = self.context.transcriber
        if transcriber is not None and not self._gone:
            await asyncio.gather(*(transcriber.tap(self, channel, speaker) for speaker, channel in parties))

    async def record_conversation(self, bridge_id: str) -> None:
        """Record the bridge from now to the call's end (once per call; a no-op when recording is off)."""
        recorder = self.context.recorder
        if recorder is not None and self._recording is None and not self._gone:
            self._recording = await recorder.start(self.call_id, bridge_id)

    async def stop_transcribing(self, channel_id: str) -> None:
        if self.context.transcriber is not None:
            await self.context.transcriber.untap_channel(self, channel_id)

    async def wait_gone(self) -> None:
        """Return when the caller's channel is gone (the script is normally cancelled then instead)."""
        await self._gone_event.wait()

    async def hangup(self) -> None:
        if self._gone or self._hangup_sent:
            return
        self._hung_up_by_us = True
        self._hangup_sent = True
        try:
            await self._rest.hangup(self.channel_id)
        except _GONE:
            pass
        except BaseException:  # not taken: the clean-up tries again
            self._hangup_sent = False
            raise

    async def _ari(self, call: Awaitable[_T]) -> _T:
        """Run an ARI request for the caller's channel; a channel that vanished means the caller left, and an
        Asterisk that stopped answering means the call is lost with it (its channels die with the process)."""
        if self._gone:
            if asyncio.iscoroutine(call):
                call.close()
            raise CallEnded()
        try:
            return await call
        except _GONE as exc:
            raise CallEnded() from exc
        except AriConnectionError as exc:
            self._gone = True
            self._gone_reason = "asterisk_lost"
            self._gone_event.set()
            raise CallEnded() from exc

    # ---- lifecycle ----

    async def run(self, handler: CallHandler) -> str:
        """Run the call script to its end and clean up; returns the call's outcome."""
        self._script = asyncio.create_task(handler(self), name=f"call-{self.call_id}")
        if self._gone:  # hung up before the script even started
            self._script.cancel()
        try:
            await asyncio.wait({self._script})
        except asyncio.CancelledError:  # the gateway stops: end this call politely
            self._script.cancel()
            await asyncio.wait({self._script})
            self.outcome = "gateway_shutdown"
            await self._cleanup()
            raise
        self.outcome = self._outcome_of(self._script)
        await self._cleanup()
        return self.outcome

    def _outcome_of(self, script: asyncio.Task[None]) -> str:
        if script.cancelled():
            return self._gone_reason
        exc = script.exception()
        if exc is None:
            return "completed"
        if isinstance(exc, CallEnded) and not self._hung_up_by_us:
            return self._gone_reason
        self.log.error("call.script_failed", error=repr(exc), exc_info=exc)
        return "error"

    async def _cleanup(self) -> None:
        if self.context.transcriber is not None:  # first: what was said up to the hang-up becomes final
            await self.context.transcriber.untap_all(self)
        for playback_id in list(self._playbacks):
            with contextlib.suppress(AriError):
                await self._rest.stop_playback(playback_id)
        self._playbacks.clear()
        for leg in list(self._legs.values()):
            await self.drop_leg(leg)
        for bridge_id in list(self._bridges):
            with contextlib.suppress(AriError):
                await self._rest.destroy_bridge(bridge_id)
        self._bridges.clear()
        try:
            await self.hangup()
        except AriError as exc:  # the call is over for us whatever Asterisk says: the desk must still hear it end
            self.log.warning("call.final_hangup_failed", error=str(exc))
        if self._recording is not None and self.context.recorder is not None:  # the bridge is gone: it is complete
            self.context.recorder.finish(self.about(), self._recording)
        seconds = round(time.monotonic() - self.started_at, 3)
        self.log.info("call.ended", outcome=self.outcome, seconds=seconds)
        self.publish(contract.CallEnded(**self.about(), reason=self.outcome, seconds=seconds))

    def about(self) -> CallFields:
        """The fields every event of this call carries: build an event as `TranscriptFinal(**session.about(), …)`."""
        return {"call_id": self.call_id, "caller_number": self.caller_number, "language": self.language}

    def publish(self, event: CallEventModel) -> None:
        """Publish an event about this call (its model from events.contract) on the bus."""
        self.context.bus.send(event)
