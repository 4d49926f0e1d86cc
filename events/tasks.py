"""Stopping a task for sure.

On Python 3.11, `asyncio.wait_for` returns its value instead of raising when a cancel arrives just as what it
waits for completes: the cancel is lost and the task runs on (nats-py's subscriptions wait this way, so a reader of
the bus's stream can swallow the cancel meant to stop it). Whoever stops such a task cancels it again until it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

CANCEL_AGAIN_S = 0.2


async def cancel_and_wait(task: asyncio.Task[Any], again_after_s: float = CANCEL_AGAIN_S) -> None:
    """Cancel `task` and return once it has ended (re-raising what it raised, other than the cancel)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=again_after_s)
    with contextlib.suppress(asyncio.CancelledError):
        await task
