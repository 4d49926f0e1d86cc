"""``AriClient``: the REST client and the events stream of one Asterisk, as one async context manager.

::

    async with AriClient(url, user, password, "hotline", settings.ari, on_connected=resync) as ari:
        await ari.wait_connected(10)        # events WebSocket up and the Stasis app registered
        async for event in ari.events:      # see voice.ari.events for the on_connected ordering
            ...
            await ari.rest.answer(channel_id)
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from .errors import AriConnectionError, AriError, AriTimeout
from .events import AriEventStream, OnConnected
from .rest import AriRestClient

__all__ = ["AriClient", "AriClientSettings"]


class AriClientSettings(Protocol):
    """What the client reads from ``voice.settings.AriSettings`` (kept structural: no import of config)."""

    @property
    def app(self) -> str: ...
    @property
    def request_timeout_s(self) -> float: ...
    @property
    def reconnect_initial_s(self) -> float: ...
    @property
    def reconnect_max_s(self) -> float: ...
    @property
    def ping_interval_s(self) -> float: ...


class _Defaults:
    """``AriSettings``' defaults."""

    app = "hotline"
    request_timeout_s = 5.0
    reconnect_initial_s = 0.2
    reconnect_max_s = 5.0
    ping_interval_s = 5.0


class AriClient:
    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        app: str | None = None,
        settings: AriClientSettings | None = None,
        *,
        on_connected: OnConnected | None = None,
    ) -> None:
        cfg: AriClientSettings = settings if settings is not None else _Defaults()
        self.app = app or cfg.app
        self.settings = cfg
        self.rest = AriRestClient(base_url, username, password, cfg.request_timeout_s)
        self.events = AriEventStream(
            base_url,
            username,
            password,
            self.app,
            on_connected=on_connected,
            ping_interval_s=cfg.ping_interval_s,
            reconnect_initial_s=cfg.reconnect_initial_s,
            reconnect_max_s=max(cfg.reconnect_max_s, cfg.reconnect_initial_s),
            connect_timeout_s=cfg.request_timeout_s,
        )

    @property
    def on_connected(self) -> OnConnected | None:
        return self.events.on_connected

    @on_connected.setter
    def on_connected(self, hook: OnConnected | None) -> None:
        self.events.on_connected = hook

    def start(self) -> None:
        """Start the events stream in the background (``async with`` does it)."""
        self.events.start()

    async def __aenter__(self) -> AriClient:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.events.close()
        await self.rest.close()

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the events WebSocket is up *and* Asterisk lists the Stasis app (calls can be taken).

        Asterisk registers the app just after the WebSocket handshake; this closes that gap.
        Raises AriAuthError (wrong credentials), AriTimeout, or AriError (stream closed).
        """
        deadline = time.monotonic() + timeout
        await self.events.wait_connected(timeout)
        while True:
            try:
                if await self.rest.application_exists(self.app):
                    return
            except AriConnectionError:
                pass
            except AriError as exc:
                if exc.status in (401, 403):
                    raise
            if time.monotonic() >= deadline:
                raise AriTimeout(f"Stasis application {self.app!r} not registered within {timeout:g} s")
            await asyncio.sleep(0.02)
            if not self.events.connected:
                await self.events.wait_connected(max(0.0, deadline - time.monotonic()))
