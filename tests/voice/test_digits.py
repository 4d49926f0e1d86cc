"""Digit collection: order, terminator, and each of the three timeouts."""

from __future__ import annotations

import asyncio
import time

from voice.digits import DigitBuffer


async def _press(buffer: DigitBuffer, keys: str, gap: float) -> None:
    for key in keys:
        await asyncio.sleep(gap)
        buffer.push(key)


async def test_digits_in_order_until_max() -> None:
    buffer = DigitBuffer()
    presser = asyncio.create_task(_press(buffer, "4711", 0.01))
    result = await buffer.gather(4, 1.0, 1.0, 5.0)
    await presser
    assert (result.digits, result.reason) == ("4711", "max_digits")


async def test_terminator_ends_entry_early() -> None:
    buffer = DigitBuffer()
    presser = asyncio.create_task(_press(buffer, "12#9", 0.01))
    result = await buffer.gather(6, 1.0, 1.0, 5.0, terminator="#")
    await presser
    assert (result.digits, result.reason) == ("12", "terminator")
    assert buffer.pending()  # the key after the terminator waits for the next entry


async def test_first_digit_timeout() -> None:
    buffer = DigitBuffer()
    started = time.monotonic()
    result = await buffer.gather(4, 0.2, 5.0, 5.0)
    assert (result.digits, result.reason, result.last_key_at) == ("", "timeout", None)
    assert 0.18 <= time.monotonic() - started < 0.5


async def test_inter_digit_timeout() -> None:
    buffer = DigitBuffer()
    buffer.push("7")
    started = time.monotonic()
    result = await buffer.gather(4, 5.0, 0.2, 5.0)
    assert (result.digits, result.reason) == ("7", "timeout")
    assert 0.18 <= time.monotonic() - started < 0.5


async def test_total_timeout_bounds_a_slow_caller() -> None:
    buffer = DigitBuffer()
    presser = asyncio.create_task(_press(buffer, "123456", 0.15))
    started = time.monotonic()
    result = await buffer.gather(6, 1.0, 1.0, 0.5)
    presser.cancel()
    assert result.reason == "timeout"
    assert result.digits in ("12", "123")
    assert time.monotonic() - started < 0.7
