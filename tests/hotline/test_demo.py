"""`hotline demo --once` end to end: everything starts on free ports, the printed URL and login work in headless
Chromium, and the page shows the simulated call with its transcript and the resolved address."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from pathlib import Path

import pytest

from tests.agent_desktop_api.test_page import REPO_ROOT, open_page, screenshot, wait_for_address, wait_for_final_line

pytestmark = pytest.mark.slow


async def test_demo_once_shows_the_call_on_the_printed_url(asterisk_install: object, tmp_path: Path) -> None:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hotline.demo",
        "--once",
        "--delay",
        "2",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    output: list[str] = []

    async def read_until(pattern: str, timeout: float) -> re.Match[str]:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            for line in output:
                if match := re.search(pattern, line):
                    return match
            left = deadline - time.monotonic()
            raw = await asyncio.wait_for(proc.stdout.readline(), left) if left > 0 else b""
            if not raw:
                raise AssertionError(f"no {pattern!r} in the demo's output:\n" + "".join(output))
            output.append(raw.decode("utf-8", "replace"))

    try:
        url = (await read_until(r"Desktop:\s+(\S+)", 90)).group(1)
        user, password = (await read_until(r"Login:\s+(\S+) / (\S+)", 5)).groups()
        async with open_page(tmp_path) as page:
            await page.goto(url)
            await page.fill("#login-username", user)
            await page.fill("#login-password", password)
            await page.click("#login-submit")
            await page.locator('#conn-state[data-state="connected"]').wait_for()
            await page.locator("#call-card:not([data-state='idle'])").wait_for(timeout=30_000)
            assert await page.inner_text("#call-caller") == "13800138000"
            await wait_for_final_line(page, "海淀", timeout=60)
            await wait_for_address(page, "海淀区", timeout=30)
            await screenshot(page, "demo")
        await read_until(r"call\.ended", 60)
        assert await asyncio.wait_for(proc.wait(), 30) == 0, "".join(output)
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 10)
    print(f"demo --once: {time.monotonic() - started:.1f} s")
