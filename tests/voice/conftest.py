"""Fixtures for real-call tests: a gateway attached to the session's private Asterisk, and softphones."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hotline.service import GatewayService
from tests.support.asterisk_fixture import make_settings
from tests.support.ports import free_port
from tools.softphone.driver import Softphone
from voice.ari import AriRestClient
from voice.asterisk.instance import AsteriskInstance
from voice.session import CallHandler

GatewayStarter = Callable[..., Awaitable[GatewayService]]


def free_tcp_port() -> int:
    """A listener's port below the kernel's outgoing ports (tests/support/ports.py says why)."""
    return free_port()


def attach_settings(instance: AsteriskInstance, **sections: dict[str, Any]) -> Any:
    """Settings for a gateway attached (mode external) to `instance`, with a free operations port."""
    external = {
        "mode": "external",
        "ari_url": instance.ari_url,
        "ari_username": instance.ari_username,
        "ari_password": instance.ari_password,
    }
    return make_settings(
        asterisk={**external, **sections.pop("asterisk", {})},
        http={"port": free_tcp_port()},
        **sections,
    )


@pytest.fixture
async def start_gateway(asterisk: AsteriskInstance, tmp_path: Path) -> AsyncIterator[GatewayStarter]:
    """`await start_gateway(handler, instance=None, wait=True, call={...})` → a running GatewayService."""
    services: list[GatewayService] = []

    async def start(
        handler: CallHandler | None = None,
        *,
        instance: AsteriskInstance | None = None,
        wait: bool = True,
        **sections: dict[str, Any],
    ) -> GatewayService:
        routing = {"wrap_up_s": 0, **sections.pop("routing", {})}
        sections["asr"] = {"enabled": False, **sections.get("asr", {})}  # tests that transcribe turn it on
        database = {"url": f"sqlite:///{tmp_path / 'hotline.db'}"}
        sections["recording"] = {"dir": tmp_path / "recordings", **sections.get("recording", {})}
        service = GatewayService(
            attach_settings(instance or asterisk, routing=routing, database=database, **sections), handler
        )
        services.append(service)
        await service.start()
        if wait:
            assert service.gateway is not None
            await service.gateway.wait_ready(15)
        return service

    yield start
    for service in services:
        await service.stop()


@pytest.fixture
async def ari(asterisk: AsteriskInstance) -> AsyncIterator[AriRestClient]:
    """A separate ARI connection to check what Asterisk holds."""
    async with AriRestClient(asterisk.ari_url, asterisk.ari_username, asterisk.ari_password, 5.0) as client:
        yield client


@pytest.fixture
async def phone(tmp_path: Path) -> AsyncIterator[Softphone]:
    async with Softphone.open(log_path=tmp_path / "phone.log", user="13800138000") as softphone:
        yield softphone


def entry_uri(instance: AsteriskInstance, number: str = "12345") -> str:
    return f"sip:{number}@127.0.0.1:{instance.sip_port}"


async def start_registered_phone(
    instance: AsteriskInstance, account: str, log_dir: Path, *, auto_answer: bool = True, answer_code: int = 200
) -> Softphone:
    """A phone registered as an operator (or the interpreter centre) that answers calls by itself."""
    phone = await Softphone.start(log_path=log_dir / f"{account}.log", user=account)
    await phone.account(
        user=account,
        password=instance.secrets.operator_password(account),
        registrar=f"sip:127.0.0.1:{instance.sip_port}",
    )
    if auto_answer:
        await phone.auto_answer(True, code=answer_code)
    return phone


@contextlib.asynccontextmanager
async def registered(
    instance: AsteriskInstance, log_dir: Path, *accounts: str, auto_answer: bool = True, answer_code: int = 200
) -> AsyncIterator[list[Softphone]]:
    phones = [
        await start_registered_phone(instance, account, log_dir, auto_answer=auto_answer, answer_code=answer_code)
        for account in accounts
    ]
    try:
        yield phones
    finally:
        for phone in phones:
            await phone.close(check=False)
