"""A caller who waited as long as the queue allows is promised a call back; the operator's page lists them, and the
operator takes the callback and records how it went from the keyboard (real gateway, real call, headless Chromium)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hotline.settings import PROJECT_ROOT
from tests.agent_desktop_api.test_page import dial_citizens, gateway_for_op1002, log_in, open_page, screenshot
from tests.agent_desktop_api.test_page_supervision import press
from tests.voice.conftest import GatewayStarter, phone, start_gateway
from tools.softphone.driver import Softphone
from voice.asterisk.instance import AsteriskInstance
from voice.operators import Presence

__all__ = ["phone", "start_gateway"]

SHIPPED_FLOW = PROJECT_ROOT / "ivr_flows" / "flows" / "12345.yaml"


@pytest.mark.slow
async def test_a_caller_who_waited_too_long_is_called_back_from_the_operators_page(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    service = await gateway_for_op1002(start_gateway)
    assert service.gateway is not None and service.gateway.routing is not None and service.flows is not None
    await service.gateway.routing.router.pool.set_presence("op1002", Presence.AWAY)  # nobody takes the call
    short_wait = SHIPPED_FLOW.read_text().replace(
        "    queue: citizens\n    skills: [zh]\n", "    queue: citizens\n    skills: [zh]\n    max_wait_s: 3\n", 1
    )
    assert "max_wait_s: 3" in short_wait
    await asyncio.to_thread(service.flows.service.publish, short_wait, "12345.yaml", author="test")
    async with open_page(tmp_path) as page:
        await log_in(page, service)
        await page.locator("#callbacks-empty", has_text="没有待回电").wait_for(timeout=10_000)

        call = await dial_citizens(phone, asterisk)  # waits 3 s, hears the callback promise, goodbye
        await phone.wait_state(call, "DISCONNECTED", timeout=30)
        assert service.desktop is not None
        [promised] = await asyncio.to_thread(service.desktop.callbacks.pending)
        number = str(promised["caller_number"])
        assert promised["queue"] == "citizens" and promised["waited_s"] >= 3

        item = page.locator("#callbacks-list li", has_text=number)
        await item.wait_for(timeout=15_000)  # the card refreshes every 10 s
        assert await page.locator("#callbacks-count").inner_text() == "1"
        await press(page, f"回电 Call back {number}")
        await page.locator("#callbacks-list li.mine", has_text=f"请拨打 {number}").wait_for(timeout=5_000)
        focused = await page.evaluate("document.activeElement.getAttribute('aria-label')")
        assert focused == f"已回电 Reached {number}"  # the keyboard is where the next step is
        await screenshot(page, "callback-taken")

        await press(page, f"无人接听 No answer {number}")  # nobody answered: it stays for another try
        await item.filter(has_text="已拨 1 次未接通").wait_for(timeout=5_000)
        await press(page, f"回电 Call back {number}")
        await press(page, f"已回电 Reached {number}")
        await page.locator("#callbacks-message", has_text=f"{number}：已回电").wait_for(timeout=5_000)
        # The list is fetched again after the message is shown: done, the callback leaves it.
        await page.locator("#callbacks-empty", has_text="没有待回电").wait_for(timeout=5_000)
        assert await page.locator("#callbacks-list li").count() == 0
    assert await asyncio.to_thread(service.desktop.callbacks.pending) == []
