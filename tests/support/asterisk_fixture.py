"""Fixtures for tests against a real Asterisk (registered in tests/conftest.py).

- `asterisk_install` (session): the embedded Asterisk under the project's var/asterisk, installed on first
  use from the cache var/cache/asterisk-debs (network only when the cache is empty). A no-op when present.
- `asterisk` (session): one private instance shared by the whole run, on free ports, in a temporary
  runtime folder. Started and stopped synchronously (AsteriskInstance.start_sync/stop_sync), so it works
  from sync and async tests alike and is tied to no event loop: its process is a plain Popen. Tests must
  leave it as they found it (hang up their calls); use `asterisk_factory` to restart or break an instance.
- `asterisk_factory` (function, async): `await asterisk_factory(settings=None, **sections)` starts a fresh
  instance on free ports in the test's tmp_path (`start=False`: only create it; `ports=` to choose them);
  every instance is stopped after the test.

Settings come from `make_settings()`: the project defaults (config/hotline.yaml, operators op1001 and op1002)
with keys replaced per section, e.g. `make_settings(telephony={"max_concurrent_calls": 4})`.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hotline.settings import Settings, load_settings
from tests.support.ports import free_block, free_port
from voice.asterisk.installer import InstallResult, install_asterisk
from voice.asterisk.instance import AsteriskInstance, InstancePorts

AsteriskFactory = Callable[..., Awaitable[AsteriskInstance]]


def make_settings(**sections: dict[str, Any]) -> Settings:
    """Project settings with some keys replaced, e.g. make_settings(asterisk={"startup_timeout_s": 5})."""
    base = load_settings()
    merged: dict[str, Any] = {
        name: {**base.model_dump(include={name})[name], **values} for name, values in sections.items()
    }
    return load_settings(**merged) if merged else base


def free_ports(settings: Settings) -> InstancePorts:
    """Free HTTP (TCP) and SIP (UDP) ports, and an RTP range, out of the kernel's outgoing ports (support/ports.py).

    Probing can race with other processes; good enough for tests (a clash shows as AsteriskStartError).
    """
    span = settings.telephony.max_concurrent_calls * settings.asterisk.rtp_ports_per_call
    return InstancePorts(
        http=free_port(socket.SOCK_STREAM),
        sip=free_port(socket.SOCK_DGRAM),
        rtp_start=_even(free_block(span + 1, "asterisk_rtp", socket.SOCK_DGRAM)),
    )


def _even(port: int) -> int:
    return port + port % 2  # RTP ports start even


@pytest.fixture(scope="session")
def asterisk_install() -> InstallResult:
    settings = load_settings()
    ast = settings.asterisk
    try:
        return install_asterisk(settings.resolve(ast.prefix), settings.resolve(ast.cache_dir), ast.sid_mirror)
    except Exception as exc:  # any failure here means: no Asterisk for this run
        pytest.fail(f"cannot install the embedded Asterisk: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def asterisk(asterisk_install: InstallResult, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsteriskInstance]:
    settings = make_settings()
    instance = AsteriskInstance(settings, runtime_dir=tmp_path_factory.mktemp("asterisk"), ports=free_ports(settings))
    instance.start_sync()
    try:
        yield instance
    finally:
        instance.stop_sync()


@pytest.fixture
async def asterisk_factory(asterisk_install: InstallResult, tmp_path: Path) -> AsyncIterator[AsteriskFactory]:
    started: list[AsteriskInstance] = []

    async def factory(
        settings: Settings | None = None,
        *,
        ports: InstancePorts | None = None,
        start: bool = True,
        **sections: dict[str, Any],
    ) -> AsteriskInstance:
        settings = settings or make_settings(**sections)
        instance = AsteriskInstance(
            settings, runtime_dir=tmp_path / f"asterisk{len(started)}", ports=ports or free_ports(settings)
        )
        started.append(instance)
        if start:
            await instance.start()
        return instance

    yield factory
    for instance in started:
        await instance.stop()
