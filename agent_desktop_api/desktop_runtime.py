"""What the desktop routes run on: the call control and the bus (as Protocols: the gateway in this process, or
another process over the bus), the event log, the socket hub, the address confirmations and the tickets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypedDict

import structlog
from fastapi import HTTPException, status
from sqlalchemy.engine import Engine

from agent_desktop_api.alerts import AlertBoard
from agent_desktop_api.callbacks import CallbackList
from agent_desktop_api.confirmations import ConfirmationStore
from agent_desktop_api.desktop_stream import StreamHub
from agent_desktop_api.dispatch import DeliveryStore, DispatchSender
from agent_desktop_api.event_log import EventLog
from agent_desktop_api.history import CallArchive
from agent_desktop_api.leadership import Leadership
from agent_desktop_api.settings import DesktopSettings, DispatchSettings
from agent_desktop_api.tickets import TicketStore
from events.address import PlaceHit
from events.bus import EventBus
from events.replay import EventStream
from events.ticket import CategoryChoice

log = structlog.get_logger(__name__)


class OperatorState(TypedDict):
    """An operator as the voice side sees them now."""

    id: str
    skills: list[str]
    presence: str  # voice.operators.Presence's values
    registered: bool | None  # the phone's SIP registration; None: not known


class QueueState(TypedDict):
    queue: str
    waiting: int
    longest_wait_s: float


class CallControl(Protocol):
    """What the desk asks of the voice side. In one process it is hotline.control.LocalControl over
    voice.gateway.Gateway; with `hotline serve --role desk` it is hotline.control.RemoteControl over the bus.

    Raises voice.gateway.CallNotFound for a call not in progress, LookupError when the call is not with an
    operator, ValueError for a target routing refuses, RuntimeError when routing is not configured, and
    ControlUnavailable when the voice side does not answer."""

    async def calls(self) -> list[dict[str, object]]: ...

    async def operators(self) -> list[OperatorState] | None: ...  # None: no routing (no operator pool)

    async def queues(self) -> list[QueueState]: ...  # queues with callers waiting now

    async def set_presence(self, operator_id: str, presence: str) -> str: ...  # KeyError: not an operator

    async def hangup_call(self, call_id: str, reason: str = "operator_hangup") -> None: ...

    async def transfer_call(self, call_id: str, target: str) -> bool: ...

    async def add_interpreter(self, call_id: str, language: str) -> bool: ...

    async def drop_interpreter(self, call_id: str) -> bool: ...

    # A supervisor's phone rung into the call (mode: listen | whisper | barge), or the mode of one there changed;
    # False: the phone did not answer. LookupError also when the supervisor has no phone.
    async def monitor_call(self, call_id: str, supervisor_id: str, mode: str) -> bool: ...

    async def end_monitor(self, call_id: str, supervisor_id: str) -> bool: ...  # False: not monitoring it


class ControlUnavailable(Exception):
    """The voice side did not answer a call-control request (another process, gone or busy)."""


class DesktopService(Protocol):
    """What mount_desktop needs of hotline.service.GatewayService."""

    @property
    def control(self) -> CallControl | None: ...

    @property
    def bus(self) -> EventBus: ...

    @property
    def engine(self) -> Engine: ...


class Desktop:
    def __init__(self, service: DesktopService, settings: DesktopSettings) -> None:
        self.service = service
        self.settings = settings
        self.log = EventLog(service.engine, settings)
        self.hub = StreamHub(self.log)
        # Several desk API instances (the bus keeps its events: bus.replay_s): one writes the log, the others
        # follow it; which one is elected. One instance alone writes from the in-process bus.
        stream = getattr(service, "event_stream", None)
        self.stream = stream if isinstance(stream, EventStream) else None
        self.leadership: Leadership | None = None
        if self.stream is not None:
            self.leadership = Leadership(service.engine, self._lead, self.log.follow)
            self.log.replaced_listeners.append(self.leadership.resign)
        self.confirmations = ConfirmationStore(service.engine)
        dispatch = getattr(getattr(service, "settings", None), "dispatch", None)
        self.dispatch_settings = dispatch if isinstance(dispatch, DispatchSettings) else DispatchSettings()
        exporting = self.dispatch_settings.webhook_url is not None
        self.tickets = TicketStore(service.engine, dispatch=exporting)
        self.deliveries = DeliveryStore(service.engine)
        self.sender = DispatchSender(self.deliveries, self.dispatch_settings) if exporting else None
        self.history = CallArchive(service.engine, settings.history_retention_days)
        self.callbacks = CallbackList(service.engine)
        self.alerts = AlertBoard()
        self.categories: dict[str, CategoryChoice] = {}  # code -> leaf of the problem catalogue
        self.place_search: Callable[[str, int], list[PlaceHit]] | None = None  # the gazetteer's, when loaded
        self.recordings: Path | None = None  # the recordings folder (voice.recording writes it), when known

    def start(self) -> None:
        """Start consuming the bus on the running loop (idempotent)."""
        if self.leadership is not None:
            self.leadership.start()
        else:
            self.log.start(self.service.bus)
        self.history.start(self.service.bus)
        self.alerts.start(self.service.bus)
        if self.sender is not None:
            self.sender.start()

    async def stop(self) -> None:
        if self.leadership is not None:
            await self.leadership.stop(finish=self.log.stop)
        else:
            await self.log.stop()
        await self.history.stop()
        await self.alerts.stop()
        if self.sender is not None:
            await self.sender.stop()

    @property
    def bus(self) -> EventBus:
        return self.service.bus

    @property
    def leading(self) -> bool:
        """This instance writes the event log (and does what only one desk instance may: see hotline.nodes)."""
        return self.leadership.leading if self.leadership is not None else True

    async def _lead(self) -> None:
        assert self.stream is not None
        await self.log.lead(self.stream)

    def control(self) -> CallControl:
        control = self.service.control
        if control is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no call control behind this API process")
        return control

    async def operators(self) -> list[OperatorState] | None:
        """The operators and their presence; None when there is no operator pool (no routing)."""
        control = self.service.control
        if control is None:
            return None
        try:
            return await control.operators()
        except ControlUnavailable as exc:
            raise _unavailable(exc) from None

    async def operator(self, operator_id: str) -> OperatorState | None:
        return next((op for op in await self.operators() or [] if op["id"] == operator_id), None)

    async def live_calls(self) -> dict[str, dict[str, object]]:
        control = self.service.control
        if control is None:
            return {}
        try:
            return {str(call["call_id"]): call for call in await control.calls()}
        except ControlUnavailable as exc:
            raise _unavailable(exc) from None


def _unavailable(exc: ControlUnavailable) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"the call side does not answer: {exc}")
