"""The ARI application: owns one CallSession per caller, routes events to them in order, resynchronises after
the event stream reconnects, and keeps one call's failure away from the others."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from events.bus import EventBus
from voice.ari import AriClient, AriError, AriEvent, AriNotFound, Endpoint, EndpointStateChange, StasisStart
from voice.metrics import GatewayMetrics
from voice.recording import CallRecorder
from voice.session import CallContext, CallHandler, CallSession

if TYPE_CHECKING:
    from voice.routing import RoutingServices
    from voice.taps import Transcriber

log = structlog.get_logger(__name__)

ENDPOINT_POLL_S = 1.0  # how fast a phone that registers or goes away is noticed
# ARI events the gateway never reads (see Gateway.dispatch and CallSession.handle_event).
UNUSED_EVENTS = (
    "ChannelVarset",
    "ChannelStateChange",
    "ChannelDialplan",
    "ChannelCallerId",
    "ChannelConnectedLine",
    "ChannelTalkingStarted",
    "ChannelTalkingFinished",
    "ChannelHold",
    "ChannelUnhold",
    "PlaybackContinuing",
    "BridgeCreated",
    "BridgeDestroyed",
    "ChannelEnteredBridge",
    "ChannelLeftBridge",
)


class CallNotFound(LookupError):
    """No call in progress has that id."""


class Gateway:
    def __init__(
        self,
        client: AriClient,
        handler: CallHandler,
        *,
        max_calls: int,
        prompts_dir: Path,
        metrics: GatewayMetrics | None = None,
        services: RoutingServices | None = None,
        moh_class: str = "default",
        bus: EventBus | None = None,
        transcriber: Transcriber | None = None,
        recorder: CallRecorder | None = None,
    ) -> None:
        self.client = client
        self.metrics = metrics or GatewayMetrics()
        self._handler = handler
        self._max_calls = max_calls
        self.bus = bus or EventBus()
        self.context = CallContext(
            client,
            self.metrics,
            prompts_dir,
            self._register_leg,
            moh_class=moh_class,
            services=services,
            bus=self.bus,
            transcriber=transcriber,
            recorder=recorder,
        )
        self.routing = services
        self._sessions: dict[str, CallSession] = {}
        self._legs: dict[str, CallSession] = {}  # channels we created -> the call that owns them
        self._tasks: set[asyncio.Task[None]] = set()
        self._synced = asyncio.Event()  # set once the first resync after a (re)connection is done
        self.metrics.ari_connected.set_function(lambda: 1.0 if self.ready else 0.0)

    # ---- state ----

    @property
    def ready(self) -> bool:
        """Calls can be taken: the event stream is up and our state matches Asterisk's."""
        return self.client.events.connected and self._synced.is_set()

    @property
    def active_calls(self) -> int:
        return len(self._sessions)

    def session(self, channel_id: str) -> CallSession | None:
        return self._sessions.get(channel_id)

    def _register_leg(self, channel_id: str, owner: CallSession | None) -> None:
        if owner is None:
            self._legs.pop(channel_id, None)
        else:
            self._legs[channel_id] = owner

    async def wait_ready(self, timeout: float) -> None:
        """Wait until Asterisk knows our Stasis app (raises AriAuthError on wrong credentials)."""
        await self.client.wait_connected(timeout)
        await asyncio.wait_for(self._synced.wait(), timeout)

    # ---- event loop ----

    async def run(self) -> None:
        """Consume the event stream until cancelled (raises AriAuthError on wrong credentials)."""
        self.client.on_connected = self._on_connected
        self.client.start()
        self._spawn(self._poll_operator_phones(), "operator-phones")
        async for event in self.client.events:
            self.dispatch(event)

    def dispatch(self, event: AriEvent) -> None:
        if isinstance(event, EndpointStateChange):
            self._endpoint_changed(event.endpoint)
            return
        channel_ids = event.channel_ids()
        owners: list[CallSession] = []
        for channel_id in channel_ids:
            owner = self._sessions.get(channel_id) or self._legs.get(channel_id)
            if owner is not None and owner not in owners:
                owners.append(owner)
        if isinstance(event, StasisStart) and not owners:
            self._start_call(event)
            return
        for session in owners:
            try:
                session.handle_event(event)
            except Exception:  # one call's bug must not stop the stream for the others
                session.log.exception("call.event_failed", event_type=event.type)

    def _start_call(self, event: StasisStart) -> None:
        channel = event.channel
        if event.args or channel.id.startswith("hotline-"):
            # A leg we created (operator, snoop, media) whose owner is gone: nobody will drive it.
            self._spawn(self._hangup_quietly(channel.id), f"orphan-{channel.id}")
            return
        if len(self._sessions) >= self._max_calls:
            log.warning("call.rejected", channel=channel.id, reason="capacity", active=len(self._sessions))
            self.metrics.calls_total.labels(outcome="rejected").inc()
            self._spawn(self._hangup_quietly(channel.id, reason="congestion"), f"reject-{channel.id}")
            return
        session = CallSession(channel, self.context)
        self._sessions[channel.id] = session
        self.metrics.active_calls.set(len(self._sessions))
        session.log.info("call.started", channel=channel.name)
        self._spawn(self._supervise(session), f"session-{channel.id}")

    async def _supervise(self, session: CallSession) -> None:
        outcome = "error"
        try:
            outcome = await session.run(self._handler)
        except asyncio.CancelledError:
            outcome = "gateway_shutdown"
            raise
        except Exception:  # the session's own clean-up failed: count it, keep the gateway going
            session.log.exception("call.cleanup_failed")
        finally:
            self._sessions.pop(session.channel_id, None)
            self.metrics.active_calls.set(len(self._sessions))
            self.metrics.calls_total.labels(outcome=outcome).inc()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hangup_quietly(self, channel_id: str, reason: str = "normal") -> None:
        try:
            await self.client.rest.hangup(channel_id, reason=reason)
        except AriError as exc:
            log.debug("hangup.ignored", channel=channel_id, error=str(exc))

    # ---- connection state ----

    async def _on_connected(self, is_reconnect: bool) -> None:
        """Runs in the event-consuming task before the new connection's first event (see voice.ari.events)."""
        if is_reconnect:
            self.metrics.ari_reconnects.inc()
        await self._filter_events()
        await self._resync(first=not is_reconnect)
        await self._refresh_operator_phones()
        self._synced.set()
        log.info("ari.connected", reconnect=is_reconnect, active_calls=len(self._sessions))

    async def _filter_events(self) -> None:
        """Events no call needs are not sent at all: a third of a call's events (variables set, state changes,
        playback continuing), which Asterisk would serialise and we would parse."""
        try:
            await self.client.rest.filter_events(self.client.app, UNUSED_EVENTS)
        except AriError as exc:  # an Asterisk without event filters: every event comes, as before
            log.warning("ari.event_filter_refused", error=str(exc))

    async def _resync(self, first: bool) -> None:
        """Make our view match Asterisk's: end calls whose channel vanished, adopt the ones still there,
        hang up channels of our app that nobody owns (left by an earlier gateway process)."""
        try:
            channels = await self.client.rest.list_channels()
        except AriError as exc:
            log.warning("ari.resync_failed", error=str(exc))
            return
        present = {channel.id for channel in channels}
        for channel_id, session in list(self._sessions.items()):
            if channel_id not in present:
                session.log.warning("call.lost_during_disconnect")
                session.channel_gone("asterisk_lost")
            else:
                await self._settle_playbacks(session)
        app = self.client.app
        for channel in channels:
            in_our_app = channel.dialplan.app_name == "Stasis" and channel.dialplan.app_data.split(",")[0] == app
            if in_our_app and channel.id not in self._sessions and channel.id not in self._legs:
                log.warning("ari.orphan_channel", channel=channel.id, first_connection=first)
                self._spawn(self._hangup_quietly(channel.id), f"orphan-{channel.id}")

    def _endpoint_changed(self, endpoint: Endpoint) -> None:
        if self.routing is None or endpoint.technology != "PJSIP":
            return
        registered = (endpoint.state or "").lower() == "online"
        self._spawn(self.routing.router.pool.set_registered(endpoint.resource, registered), "endpoint-state")

    async def _refresh_operator_phones(self) -> None:
        """Read the operators' SIP registrations, so a phone that is off is not offered calls.

        Polled rather than subscribed: subscribing the app to PJSIP endpoints would also deliver every event of the
        channels on them a second time (each DTMF digit twice)."""
        if self.routing is None:
            return
        try:
            endpoints = await self.client.rest.list_endpoints()
        except AriError as exc:
            log.debug("ari.endpoint_poll_failed", error=str(exc))
            return
        for endpoint in endpoints:
            self._endpoint_changed(endpoint)

    async def _poll_operator_phones(self) -> None:
        while True:
            await asyncio.sleep(ENDPOINT_POLL_S)
            if self.ready:
                await self._refresh_operator_phones()

    async def _settle_playbacks(self, session: CallSession) -> None:
        """A PlaybackFinished may have been lost while disconnected: ask Asterisk about each pending one."""
        for playback_id in session.pending_playbacks():
            try:
                await self.client.rest.get_playback(playback_id)
            except AriNotFound:
                session.playback_lost(playback_id)
            except AriError:
                pass

    # ---- call control (the operator desktop calls these) ----

    def _call(self, call_id: str) -> CallSession:
        session = self._sessions.get(call_id)
        if session is None:
            raise CallNotFound(call_id)
        return session

    def _routing(self) -> RoutingServices:
        if self.routing is None:
            raise RuntimeError("routing is not configured for this gateway")
        return self.routing

    def calls(self) -> list[dict[str, object]]:
        """Calls in progress, for dashboards and the desktop's current-call view."""
        routing = self.routing
        return [
            {
                "call_id": s.call_id,
                "caller_number": s.caller_number,
                "language": s.language,
                "operator_id": routing.operator_of(s.call_id) if routing is not None else None,
                "interpreter": routing.interpreter_present(s.call_id) if routing is not None else False,
                "monitors": routing.supervision.monitors_of(s.call_id) if routing is not None else {},
                "seconds": round(time.monotonic() - s.started_at, 1),
            }
            for s in self._sessions.values()
        ]

    async def hangup_call(self, call_id: str, reason: str = "operator_hangup") -> None:
        """End a call from the desk; `reason` becomes its outcome (and the stored call.ended reason)."""
        await self._call(call_id).end(reason)

    async def transfer_call(self, call_id: str, target: str) -> bool:
        return await self._routing().transfer_talk(self._call(call_id), target)

    async def add_interpreter(self, call_id: str, language: str) -> bool:
        return await self._routing().add_interpreter(self._call(call_id), language)

    async def drop_interpreter(self, call_id: str) -> bool:
        return await self._routing().drop_interpreter(self._call(call_id))

    async def monitor_call(self, call_id: str, supervisor_id: str, mode: str) -> bool:
        """A supervisor listens to, whispers into or barges into the call (see voice.supervision)."""
        return await self._routing().supervision.monitor(self._call(call_id), supervisor_id, mode)

    async def end_monitor(self, call_id: str, supervisor_id: str) -> bool:
        return await self._routing().supervision.stop(self._call(call_id), supervisor_id)

    # ---- shutdown ----

    async def stop(self) -> None:
        """Hang up every call we own and wait for their sessions to finish cleaning up."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
