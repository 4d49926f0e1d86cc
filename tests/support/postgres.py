"""A real PostgreSQL server for a test session: Debian's binaries, a cluster in a temporary folder, loopback only,
on a free port; stopped and deleted at the end."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _bindir() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        pytest.fail("PostgreSQL is not installed: run ./scripts/setup.sh (Debian package postgresql)", pytrace=False)
    return versions[-1].parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_server_user(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root: use the package's own `postgres` account then.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    bindir = _bindir()
    base = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
    data = base / "data"
    data.mkdir()
    if os.geteuid() == 0:
        base.chmod(0o755)
        shutil.chown(data, "postgres", "postgres")
    port = _free_port()
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "hotline", "--auth=trust", "-E", "UTF8", "--no-sync"]
    subprocess.run(_as_server_user(initdb), check=True, capture_output=True, timeout=120)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off"
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w", "-t", "60"]
    subprocess.run(_as_server_user([*pg_ctl, "-o", options, "start"]), check=True, capture_output=True, timeout=90)
    try:
        yield f"postgresql+psycopg://hotline@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_server_user([*pg_ctl, "-m", "fast", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
