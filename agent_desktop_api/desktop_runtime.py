"""What the desktop routes run on: the parts of the gateway service they use (as Protocols, so tests and a
separate API process can stand in for it), the event log, the socket hub and the address confirmations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import structlog
from fastapi import HTTPException, status
from sqlalchemy.engine import Engine

from agent_desktop_api.confirmations import ConfirmationStore
from agent_desktop_api.desktop_stream import StreamHub
from agent_desktop_api.event_log import EventLog
from agent_desktop_api.settings import DesktopSettings
from agent_desktop_api.tickets import TicketStore
from events.address import PlaceHit
from events.bus import EventBus
from events.ticket import CategoryChoice
from voice.operators import Operator, Presence

log = structlog.get_logger(__name__)


class PoolLike(Protocol):
    def get(self, operator_id: str) -> Operator: ...

    def snapshot(self) -> list[dict[str, object]]: ...

    async def set_presence(self, operator_id: str, presence: Presence) -> None: ...


class RouterLike(Protocol):
    @property
    def pool(self) -> PoolLike: ...


class RoutingLike(Protocol):
    @property
    def router(self) -> RouterLike: ...


class GatewayLike(Protocol):
    """The call-control face of voice.gateway.Gateway (raises voice.gateway.CallNotFound for unknown calls)."""

    @property
    def bus(self) -> EventBus: ...

    @property
    def routing(self) -> RoutingLike | None: ...

    def calls(self) -> list[dict[str, object]]: ...

    async def hangup_call(self, call_id: str, reason: str = "operator_hangup") -> None: ...

    async def transfer_call(self, call_id: str, target: str) -> bool: ...

    async def add_interpreter(self, call_id: str, language: str) -> bool: ...

    async def drop_interpreter(self, call_id: str) -> bool: ...


class DesktopService(Protocol):
    """What mount_desktop needs of hotline.service.GatewayService."""

    @property
    def gateway(self) -> GatewayLike | None: ...

    @property
    def engine(self) -> Engine: ...


class Desktop:
    def __init__(self, service: DesktopService, settings: DesktopSettings) -> None:
        self.service = service
        self.settings = settings
        self.log = EventLog(service.engine, settings)
        self.hub = StreamHub(self.log)
        self.confirmations = ConfirmationStore(service.engine)
        self.tickets = TicketStore(service.engine)
        self.categories: dict[str, CategoryChoice] = {}  # code -> leaf of the problem catalogue
        self.place_search: Callable[[str, int], list[PlaceHit]] | None = None  # the gazetteer's, when loaded

    def start(self) -> None:
        """Start consuming the gateway's bus on the running loop (idempotent)."""
        gateway = self.service.gateway
        if gateway is None:
            log.warning("desktop.no_gateway", note="no event stream: this process has no gateway")
            return
        self.log.start(gateway.bus)

    async def stop(self) -> None:
        await self.log.stop()

    def gateway(self) -> GatewayLike:
        gateway = self.service.gateway
        if gateway is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no gateway behind this API process")
        return gateway

    def pool(self) -> PoolLike | None:
        gateway = self.service.gateway
        routing = gateway.routing if gateway is not None else None
        return routing.router.pool if routing is not None else None

    def operator(self, operator_id: str) -> Operator | None:
        pool = self.pool()
        if pool is None:
            return None
        try:
            return pool.get(operator_id)
        except KeyError:  # voice.operators.UnknownOperator
            return None

    def live_calls(self) -> dict[str, dict[str, object]]:
        gateway = self.service.gateway
        return {str(call["call_id"]): call for call in gateway.calls()} if gateway is not None else {}
