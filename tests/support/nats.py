"""A real NATS server for a test: Debian's nats-server (hotline.cluster.servers.NatsServer: loopback only, a free
port, a token in a 0600 config file, never on the command line where `ps` would show it), and a bus link to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pydantic import SecretStr

from events.nats_link import NatsLink
from events.settings import BusSettings
from hotline.cluster.servers import NatsServer, ServerError
from tests.support.ports import free_port

__all__ = ["NatsServer", "jetstream_server", "linked", "nats_server"]


def _free_port() -> int:
    return free_port()  # below the kernel's outgoing ports: a client socket cannot take it before the server binds


def _running(server: NatsServer) -> Iterator[NatsServer]:
    try:
        server.start()
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    yield from _running(NatsServer(tmp_path / "nats", _free_port()))


@pytest.fixture
def jetstream_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A NATS server with JetStream (what `hotline cluster up` runs: leases, the bus's kept events)."""
    yield from _running(NatsServer(tmp_path / "nats-js", _free_port(), jetstream=True))


@asynccontextmanager
async def linked(server: NatsServer, name: str, replay_s: float = 0) -> AsyncIterator[NatsLink]:
    """A process's bus link to `server`, connected, closed at the end."""
    settings = BusSettings(url=server.url, token=SecretStr(server.token), connect_timeout_s=2, replay_s=replay_s)
    link = NatsLink(settings, name)
    await link.connect()
    try:
        yield link
    finally:
        await link.close()
