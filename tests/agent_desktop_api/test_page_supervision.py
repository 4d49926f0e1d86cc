"""A supervisor on the wallboard joins an operator's live call from the keyboard: listen, then whisper, then leave.
The real gateway rings the supervisor's own (pjsua2) phone; an operator may not, nor a supervisor without a phone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page

from agent_desktop_api.auth import AuthService
from tests.agent_desktop_api.test_page import (
    PASSWORD,
    base_url,
    dial_citizens,
    gateway_for_op1002,
    open_page,
    screenshot,
)
from tests.voice.conftest import GatewayStarter, phone, registered, start_gateway
from tools.softphone.driver import Softphone
from voice.asterisk.instance import AsteriskInstance

__all__ = ["phone", "start_gateway"]
OPERATOR, SUPERVISOR = "op1002", "sup2001"  # sup2001: the shipped configuration's supervisor phone


async def press(page: Page, name: str) -> None:
    """Tab-reachable button, activated with the keyboard."""
    button = page.get_by_role("button", name=name, exact=True)
    await button.focus()
    await page.keyboard.press("Enter")


@pytest.mark.slow
async def test_a_supervisor_listens_whispers_and_leaves_from_the_wallboard(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    service = await gateway_for_op1002(start_gateway)
    assert service.gateway is not None
    for name, role in ((SUPERVISOR, "supervisor"), ("sue", "supervisor")):
        await asyncio.to_thread(AuthService(service.engine).add_user, name, role, PASSWORD)
    async with (
        registered(asterisk, tmp_path, OPERATOR, SUPERVISOR) as (operator, supervisor),
        open_page(tmp_path) as page,
        httpx.AsyncClient(base_url=base_url(service), timeout=10) as http,
    ):
        await page.goto(base_url(service) + "/")
        await page.fill("#login-username", SUPERVISOR)
        await page.fill("#login-password", PASSWORD)
        await page.keyboard.press("Enter")
        await page.locator("#wallboard").wait_for(state="visible")
        row = page.locator(f'#wb-operators tr[data-key="{OPERATOR}"]')
        assert await row.get_by_role("button").filter(visible=True).count() == 0  # no call: nothing to join

        call = await dial_citizens(phone, asterisk)
        op_call = await operator.wait_incoming(timeout=15)
        await operator.wait_state(op_call, "CONFIRMED", timeout=5)
        await row.filter(has_text="通话中").wait_for(timeout=10_000)
        [live] = service.gateway.calls()
        call_id = str(live["call_id"])

        await press(page, f"监听 Listen {OPERATOR}")
        sup_call = await supervisor.wait_incoming(timeout=10)
        await supervisor.wait_state(sup_call, "CONFIRMED", timeout=5)
        await row.filter(has_text=f"{SUPERVISOR} 监听").wait_for(timeout=10_000)
        await page.locator("#wb-message", has_text=f"监听 Listen：{OPERATOR}").wait_for(timeout=5_000)
        await screenshot(page, "wallboard-listening")

        await press(page, f"耳语 Whisper {OPERATOR}")  # the same phone, another mode: no second ring
        await row.filter(has_text=f"{SUPERVISOR} 耳语").wait_for(timeout=10_000)
        assert await page.get_by_role("button", name=f"耳语 Whisper {OPERATOR}").get_attribute("aria-pressed") == (
            "true"
        )
        assert len(supervisor.find("incoming")) == 1

        # Only supervisors, and only with a phone to ring: an operator gets 403, sue (no phone) a clear 409.
        for user, code, says in ((OPERATOR, 403, ""), ("sue", 409, "telephony.supervisors")):
            login = await http.post("/api/auth/login", json={"username": user, "password": PASSWORD})
            bearer = {"Authorization": f"Bearer {login.json()['token']}"}
            answer = await http.post(f"/api/supervisor/calls/{call_id}/monitor", json={"mode": "barge"}, headers=bearer)
            assert answer.status_code == code, answer.text
            assert says in answer.text

        await press(page, f"退出 Leave {OPERATOR}")
        await supervisor.wait_state(sup_call, "DISCONNECTED", timeout=5)
        await page.locator("#wb-message", has_text="已退出").wait_for(timeout=5_000)
        await row.filter(has_text=SUPERVISOR).wait_for(state="detached", timeout=10_000)
        assert not operator.find("state", call=op_call, state="DISCONNECTED")  # the call goes on without them
        await phone.hangup(call)
        await operator.wait_state(op_call, "DISCONNECTED", timeout=5)

        # The call's record says who came in, how, and when they left (what a supervisor's own audit reads).
        assert service.desktop is not None
        await service.desktop.history.settled()
        login = await http.post("/api/auth/login", json={"username": "sue", "password": PASSWORD})
        bearer = {"Authorization": f"Bearer {login.json()['token']}"}
        record = await http.get(f"/api/history/{call_id}", headers=bearer)
        assert record.status_code == 200, record.text
        steps = [(m["supervisor"], m["mode"]) for m in record.json()["monitoring"]]
        assert steps == [(SUPERVISOR, "listen"), (SUPERVISOR, "whisper"), (SUPERVISOR, "left")], steps
