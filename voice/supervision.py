"""Supervisors in an operator's call: listen (hear both sides, unheard), whisper (only the operator hears the
supervisor) and barge (everyone hears the supervisor).

The gateway rings the supervisor's own phone, then bridges it with a snoop channel on the operator's channel: the
snoop hears both directions (the operator and what the operator hears), and what the supervisor says goes into
the operator's outgoing direction (whisper: `out`) or both directions (barge: `both`; the `in` direction is mixed
into the call as if the operator said it, so the caller, an interpreter and the recording have it). Changing the
mode swaps the snoop channel; the supervisor's phone stays up. Hanging that phone up ends the monitoring; the end
of the call hangs it up. Nothing a supervisor types reaches Asterisk: the phone comes from the configuration,
keyed by the supervisor's name.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args

import structlog

from events.contract import CallEventModel, CallFields, CallMonitored
from voice.ari import SpyDirection
from voice.legs import Leg

MonitorMode = Literal["listen", "whisper", "barge"]
MONITOR_MODES: tuple[MonitorMode, ...] = get_args(MonitorMode)
Change = Literal["listen", "whisper", "barge", "left"]

_WHISPER: dict[MonitorMode, SpyDirection] = {"listen": "none", "whisper": "out", "barge": "both"}


class MonitoredCall(Protocol):
    """What monitoring needs of a call (voice.session.CallSession is one)."""

    @property
    def call_id(self) -> str: ...

    @property
    def log(self) -> structlog.typing.FilteringBoundLogger: ...

    def about(self) -> CallFields: ...

    def publish(self, event: CallEventModel) -> None: ...

    async def dial(
        self, endpoint: str, role: str, timeout_s: float, on_ringing: Callable[[], None] | None = None
    ) -> Leg | None: ...

    async def snoop(self, channel_id: str, spy: SpyDirection, whisper: SpyDirection) -> Leg: ...

    async def own_bridge(self, bridge_id: str, channel_ids: Sequence[str]) -> None: ...

    async def join_bridge(self, bridge_id: str, channel_ids: Sequence[str]) -> None: ...

    async def drop_leg(self, leg: Leg) -> None: ...

    async def destroy_bridge(self, bridge_id: str) -> None: ...


class NoSupervisorPhone(LookupError):
    """The supervisor has no phone in `telephony.supervisors`."""


class SupervisorBusy(LookupError):
    """The supervisor's phone is already in another call."""


@dataclass(eq=False)
class _Monitor:
    supervisor_id: str
    mode: MonitorMode
    phone: Leg
    bridge_id: str
    spy: Leg | None = None
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervision:
    """Who monitors which call, and the channels that carry it.

    `operator_of(call_id)` is the call's operator and their current leg (None once the call has no operator), so
    a monitor follows a transfer. Each change is a `call.monitored` event: the call's record keeps who came in."""

    def __init__(
        self,
        phones: Mapping[str, str],
        ring_timeout_s: float,
        operator_of: Callable[[str], tuple[str, Leg] | None],
    ) -> None:
        self.phones = dict(phones)
        self.ring_timeout_s = ring_timeout_s
        self._operator_of = operator_of
        self._monitors: dict[str, dict[str, _Monitor]] = {}  # call id -> supervisor id -> monitor

    def monitors_of(self, call_id: str) -> dict[str, str]:
        """Supervisor id -> mode, for the call's monitors now."""
        return {sup: m.mode for sup, m in self._monitors.get(call_id, {}).items()}

    async def monitor(self, session: MonitoredCall, supervisor_id: str, wanted: str) -> bool:
        """Start monitoring (ring the supervisor's phone) or change the mode of a monitor under way.

        False: the supervisor's phone did not answer. Raises NoSupervisorPhone, LookupError when the call has
        no operator, SupervisorBusy while they are in another call, ValueError for an unknown mode."""
        mode = next((known for known in MONITOR_MODES if known == wanted), None)
        if mode is None:
            raise ValueError(f"mode must be one of {', '.join(MONITOR_MODES)}")
        endpoint = self.phones.get(supervisor_id)
        if endpoint is None:
            raise NoSupervisorPhone(f"{supervisor_id!r} has no phone in telephony.supervisors")
        talk = self._operator_of(session.call_id)
        if talk is None:
            raise LookupError(f"call {session.call_id} is not talking to an operator")
        operator = talk[1]
        current = self._monitors.get(session.call_id, {}).get(supervisor_id)
        if current is not None and current.phone.up:
            if current.mode != mode:
                await self._spy(session, current, operator, mode)
                self._announce(session, current, mode)
            return True
        elsewhere = [call for call, monitors in self._monitors.items() if supervisor_id in monitors]
        if elsewhere and elsewhere != [session.call_id]:
            raise SupervisorBusy(f"{supervisor_id} is in call {elsewhere[0]}: leave it first")
        phone = await session.dial(endpoint, "supervisor", self.ring_timeout_s)
        if phone is None:
            session.log.info("supervisor.no_answer", supervisor=supervisor_id)
            return False
        monitor = _Monitor(supervisor_id, mode, phone, f"hotline-sup-{phone.channel_id}")
        try:
            await session.own_bridge(monitor.bridge_id, [phone.channel_id])
            await self._spy(session, monitor, operator, mode)
        except BaseException:
            await self._release(session, monitor)
            raise
        self._monitors.setdefault(session.call_id, {})[supervisor_id] = monitor
        monitor.watcher = asyncio.ensure_future(self._watch(session, monitor))
        self._announce(session, monitor, mode)
        return True

    async def stop(self, session: MonitoredCall, supervisor_id: str) -> bool:
        """End a supervisor's monitoring of the call (hangs up their phone). False: they were not monitoring."""
        monitor = self._monitors.get(session.call_id, {}).get(supervisor_id)
        if monitor is None:
            return False
        await session.drop_leg(monitor.phone)  # the watcher sees the phone's end and releases the rest
        if monitor.watcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(monitor.watcher)
        return True

    def _announce(self, session: MonitoredCall, monitor: _Monitor, mode: Change) -> None:
        if mode != "left":
            monitor.mode = mode
        talk = self._operator_of(session.call_id)
        session.log.info("supervisor.monitoring", supervisor=monitor.supervisor_id, mode=mode)
        session.publish(
            CallMonitored(
                **session.about(),
                operator_id=talk[0] if talk is not None else None,
                supervisor_id=monitor.supervisor_id,
                mode=mode,
            )
        )

    async def _spy(self, session: MonitoredCall, monitor: _Monitor, operator: Leg, mode: MonitorMode) -> None:
        """Put a snoop channel for `mode` on the operator's leg into the monitor's bridge (the old one out)."""
        spy = await session.snoop(operator.channel_id, "both", _WHISPER[mode])
        try:
            await session.join_bridge(monitor.bridge_id, [spy.channel_id])
        except Exception:
            await session.drop_leg(spy)
            raise
        old, monitor.spy = monitor.spy, spy
        if old is not None:
            await session.drop_leg(old)

    async def _watch(self, session: MonitoredCall, monitor: _Monitor) -> None:
        """Until the supervisor's phone hangs up: a snoop that ends with its operator's leg (a transfer) moves
        to the call's new operator; no operator left, the monitoring ends."""
        try:
            while True:
                spy = monitor.spy
                waits = {asyncio.ensure_future(monitor.phone.wait_ended())}
                if spy is not None:
                    waits.add(asyncio.ensure_future(spy.wait_ended()))
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for wait in waits:
                        wait.cancel()
                if monitor.phone.ended.done():
                    break
                if monitor.spy is not spy:
                    continue  # a mode change swapped it
                talk = self._operator_of(session.call_id)
                if talk is None or not talk[1].up:
                    break
                try:
                    await self._spy(session, monitor, talk[1], monitor.mode)
                except Exception as exc:
                    session.log.warning("supervisor.follow_failed", supervisor=monitor.supervisor_id, error=repr(exc))
                    break
        finally:
            await self._release(session, monitor)

    async def _release(self, session: MonitoredCall, monitor: _Monitor) -> None:
        monitors = self._monitors.get(session.call_id, {})
        if monitors.get(monitor.supervisor_id) is monitor:
            del monitors[monitor.supervisor_id]
            self._announce(session, monitor, "left")
        if not monitors:
            self._monitors.pop(session.call_id, None)
        for leg in (monitor.spy, monitor.phone):
            if leg is not None:
                await session.drop_leg(leg)
        await session.destroy_bridge(monitor.bridge_id)


__all__ = ["MONITOR_MODES", "MonitorMode", "MonitoredCall", "NoSupervisorPhone", "Supervision", "SupervisorBusy"]
