"""Mounts the operator desktop API on the gateway's FastAPI app: REST routes, the event WebSocket, and the
event-log consumer that feeds it.

Lifecycle: the consumer must run on the loop the app serves on. `mount_desktop` called inside a running loop
(the gateway's `_start_http`, whose uvicorn runs with lifespan="off") subscribes to the bus and starts consuming
at once, so no event published after this call is missed; called outside a loop (a TestClient, a separate
uvicorn process) it starts with the app's lifespan. Either way the app's lifespan shutdown stops it, and so does
`await app.state.desktop.stop()`; otherwise the task ends with its loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from agent_desktop_api import (
    callback_routes,
    desktop_routes,
    desktop_stream,
    dispatch_routes,
    history_routes,
    place_routes,
    ticket_routes,
    wallboard,
)
from agent_desktop_api.desktop_runtime import (
    CallControl,
    ControlUnavailable,
    Desktop,
    DesktopService,
    OperatorState,
    QueueState,
)
from agent_desktop_api.event_log import desktop_settings
from agent_desktop_api.settings import DesktopSettings
from events.address import PlaceHit
from events.ticket import CategoryChoice

__all__ = [
    "CallControl",
    "ControlUnavailable",
    "Desktop",
    "DesktopService",
    "DesktopSettings",
    "OperatorState",
    "QueueState",
    "mount_desktop",
]


EVENTS_DOC = """**Operator events: `WS /api/events?token=T&after=SEQ&epoch=E`** (operators only).
Sends every stored message of the operator's stream with `seq > after` in order, then live ones: JSON objects
with `type`, `call_id`, `seq` (strictly increasing per operator), `ts` (ISO-8601 UTC) and the event's fields
(`hotline events schema`). Only stored messages are sent; `{"type": "stream.status"}` says when storing waits for
the database, `{"type": "resync", "epoch", "last_seq"}` when the client's epoch or seq belongs to another database.
Send `{"type": "resume", "after": N}` to replay from N again. `{"type": "ping", "ts": ...}` (no seq) comes after
20 s of silence. Close codes: 4401 missing, invalid or expired token, or the session ended; 4403 not an operator;
4400 malformed `after`; 1009 a client frame over 4 KiB. The whole protocol: docs/desk-protocol.md."""


def mount_desktop(
    app: FastAPI,
    service: DesktopService,
    *,
    settings: DesktopSettings | None = None,
    categories: Sequence[CategoryChoice] = (),
    place_search: Callable[[str, int], list[PlaceHit]] | None = None,
    recordings: Path | None = None,
) -> Desktop:
    """`categories`: the problem catalogue's leaves the ticket's category field offers; `place_search`: the
    gazetteer search behind the address card's search field; `recordings`: the folder the calls' recordings are in."""
    desktop = Desktop(service, settings or desktop_settings(getattr(service, "settings", None)))
    desktop.categories = {choice.code: choice for choice in categories}
    desktop.place_search = place_search
    desktop.recordings = recordings
    app.state.desktop = desktop
    app.state.desktop_hub = desktop.hub
    app.include_router(desktop_routes.router)
    app.include_router(desktop_stream.router)
    app.include_router(ticket_routes.router)
    app.include_router(history_routes.router)
    app.include_router(dispatch_routes.router)
    app.include_router(wallboard.router)
    app.include_router(place_routes.router)
    app.include_router(callback_routes.router)
    app.description = f"{app.description}\n\n{EVENTS_DOC}".strip()  # OpenAPI has no WebSocket operations
    _chain_lifespan(app, desktop)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return desktop  # no loop yet: the lifespan starts it
    desktop.start()
    return desktop


def _chain_lifespan(app: FastAPI, desktop: Desktop) -> None:
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        desktop.start()
        try:
            async with inner(application) as state:
                yield state
        finally:
            await desktop.stop()

    app.router.lifespan_context = lifespan
