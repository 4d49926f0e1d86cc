"""A fake ARI events WebSocket for the client's failure paths (real sockets on 127.0.0.1).

Only for failures that a real Asterisk cannot be made to produce on demand (malformed events, silent peers,
drops at a chosen moment). Everything else is tested against a real Asterisk.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from tests.support.ports import free_port as zoned_free_port


def free_port() -> int:
    return zoned_free_port()  # below the kernel's outgoing ports (tests/support/ports.py)


def channel(channel_id: str, name: str | None = None, state: str = "Ring") -> dict[str, Any]:
    return {
        "id": channel_id,
        "name": name or f"PJSIP/caller-{channel_id}",
        "state": state,
        "caller": {"name": "", "number": "13800000000"},
        "connected": {"name": "", "number": ""},
        "accountcode": "",
        "dialplan": {
            "context": "from-caller",
            "exten": "12345",
            "priority": 2,
            "app_name": "Stasis",
            "app_data": "hotline",
        },
        "creationtime": "2026-11-02T10:00:00.123+0000",
        "language": "en",
    }


def event(event_type: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "application": "hotline",
        "timestamp": "2026-11-02T10:00:01.000+0000",
        "asterisk_id": "00:11:22:33:44:55",
        **fields,
    }


class FakeAri:
    """``/ari/events`` with basic auth; records handshakes; tests push events and drop connections."""

    def __init__(self, username: str = "hotline", password: str = "secret", port: int | None = None) -> None:
        self.username = username
        self.password = password
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/ari"
        self.handshakes = 0
        self.rejected = 0
        self.requests: list[str] = []
        self.connections: list[ServerConnection] = []
        # GET requests to other paths than /ari/events: path -> (status, JSON body); None: 404 for all
        self.rest: Callable[[str], tuple[int, str]] | None = None
        self._server: Server | None = None
        self._new_connection = asyncio.Condition()

    async def start(self) -> None:
        self._server = await serve(
            self._handler,
            "127.0.0.1",
            self.port,
            process_request=self._process_request,
            compression=None,
            ping_interval=None,
            close_timeout=0.5,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeAri:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes += 1
        self.requests.append(request.path)
        url = urlsplit(request.path)
        if url.path != "/ari/events" and self.rest is None:
            return connection.respond(HTTPStatus.NOT_FOUND, '{"message": "Not found"}\n')
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            self.rejected += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, '{"error": "Authentication required"}\n')
        if url.path != "/ari/events" and self.rest is not None:
            status, body = self.rest(url.path)
            return connection.respond(HTTPStatus(status), body)
        if not parse_qs(url.query).get("app"):
            return connection.respond(HTTPStatus.BAD_REQUEST, '{"error": "Missing app"}\n')
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        async with self._new_connection:
            self.connections.append(ws)
            self._new_connection.notify_all()
        await ws.wait_closed()

    async def wait_connections(self, count: int, timeout: float = 5.0) -> ServerConnection:
        """Wait until ``count`` connections were accepted in all; returns the latest."""
        async with asyncio.timeout(timeout), self._new_connection:
            await self._new_connection.wait_for(lambda: len(self.connections) >= count)
        return self.connections[-1]

    @property
    def current(self) -> ServerConnection:
        return self.connections[-1]

    async def send(self, data: dict[str, Any] | str) -> None:
        await self.current.send(data if isinstance(data, str) else json.dumps(data))

    def abort(self) -> None:
        """Drop the current connection without a closing handshake (as a crashing Asterisk would)."""
        transport = self.current.transport
        transport.abort()
