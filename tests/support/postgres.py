"""A real PostgreSQL server for a test session: Debian's binaries (hotline.cluster.servers.PostgresServer: a cluster
in a folder of its own, loopback only, trust auth), on a free port, without fsync; stopped and deleted at the end."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from config.database import DatabaseSettings, create_engine
from hotline.cluster.servers import PostgresServer, ServerError
from tests.support.ports import free_port


def _free_port() -> int:
    return free_port()  # below the kernel's outgoing ports: a client socket cannot take it before the server binds


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


def new_database(postgres_url: str) -> str:
    """The URL of a new, empty database on the session's server."""
    name = f"hotline_{uuid.uuid4().hex[:12]}"
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[sa.Engine]:
    """An engine on a new database of its own (no tables yet)."""
    engine = create_engine(DatabaseSettings(url=new_database(postgres_url)))
    yield engine
    engine.dispose()
