"""Buffer of DTMF digits a caller pressed, with the waits an IVR needs (type-ahead kept until read)."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from ivr_flows.port import GatherResult  # the flow runtime owns the types of the port voice implements


class DigitBuffer:
    def __init__(self) -> None:
        self._digits: deque[tuple[str, float]] = deque()
        self._arrived = asyncio.Event()

    def push(self, digit: str) -> None:
        self._digits.append((digit, time.monotonic()))
        self._arrived.set()

    def pending(self) -> bool:
        return bool(self._digits)

    def clear(self) -> None:
        self._digits.clear()
        self._arrived.clear()

    async def wait_any(self) -> None:
        """Return once at least one digit is buffered."""
        while not self._digits:
            self._arrived.clear()
            await self._arrived.wait()

    async def get(self, timeout: float) -> tuple[str, float] | None:
        """Next digit and its arrival time, or None after `timeout` seconds without one."""
        if not self._digits:
            try:
                await asyncio.wait_for(self.wait_any(), timeout=max(timeout, 0.0))
            except TimeoutError:
                return None
        digit = self._digits.popleft()
        if not self._digits:
            self._arrived.clear()
        return digit

    async def gather(
        self,
        max_digits: int,
        first_timeout: float,
        inter_digit_timeout: float,
        total_timeout: float,
        terminator: str = "",
    ) -> GatherResult:
        """Collect up to `max_digits`; stop early on the terminator or a timeout.

        The first digit may take `first_timeout`, each following one `inter_digit_timeout`, and the whole entry
        never more than `total_timeout`.
        """
        deadline = time.monotonic() + total_timeout
        digits = ""
        last_key_at: float | None = None
        while len(digits) < max_digits:
            wait = first_timeout if not digits else inter_digit_timeout
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                return GatherResult(digits, "timeout", last_key_at)
            got = await self.get(wait)
            if got is None:
                return GatherResult(digits, "timeout", last_key_at)
            digit, last_key_at = got
            if terminator and digit == terminator:
                return GatherResult(digits, "terminator", last_key_at)
            digits += digit
        return GatherResult(digits, "max_digits", last_key_at)
