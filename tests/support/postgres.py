"""A real PostgreSQL server for a test session: Debian's binaries (hotline.cluster.servers.PostgresServer: a cluster
in a folder of its own, loopback only, trust auth), on a free port, without fsync; stopped and deleted at the end."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.cluster.servers import PostgresServer, ServerError


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    # Not under pytest's 0700 temporary root: the server runs as its own account and must reach its folder.
    base = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
    server = PostgresServer(base, _free_port(), fsync=False)
    try:
        server.start()
    except ServerError as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
