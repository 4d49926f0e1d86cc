"""Other channels a call owns besides the caller's: operator, interpreter or transfer legs it dialled."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


class LegGone(Exception):
    """A leg we dialled hung up before it could be bridged."""


def _future() -> asyncio.Future[bool]:
    return asyncio.get_running_loop().create_future()


def _ended_future() -> asyncio.Future[str]:
    return asyncio.get_running_loop().create_future()


@dataclass(eq=False)
class Leg:
    channel_id: str
    role: str  # "operator" | "interpreter" | "transfer"
    endpoint: str
    # True once the far end answered (its channel entered our Stasis app); False if it never will.
    answered: asyncio.Future[bool] = field(default_factory=_future)
    # Resolved with Asterisk's hang-up cause text when the channel is gone.
    ended: asyncio.Future[str] = field(default_factory=_ended_future)

    def on_answered(self) -> None:
        if not self.answered.done():
            self.answered.set_result(True)

    def on_gone(self, cause: str) -> None:
        if not self.answered.done():
            self.answered.set_result(False)
        if not self.ended.done():
            self.ended.set_result(cause or "gone")

    async def wait_ended(self) -> str:
        """The hang-up cause. Shielded: a waiter being cancelled must not mark the leg as ended."""
        return await asyncio.shield(self.ended)

    async def wait_answered(self) -> bool:
        return await asyncio.shield(self.answered)

    @property
    def up(self) -> bool:
        return self.answered.done() and self.answered.result() and not self.ended.done()
