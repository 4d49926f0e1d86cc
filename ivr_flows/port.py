"""The small interface through which the flow runtime drives a call. `voice/` implements it; the runtime never
talks to Asterisk itself, and tests can drive a flow with a fake port."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

GatherReason = Literal["max_digits", "terminator", "timeout"]


@dataclass(frozen=True)
class GatherResult:
    """What a digit collection gave: the digits, why it stopped."""

    digits: str
    reason: GatherReason
    # Monotonic time the last key (digit or terminator) arrived; None when the caller pressed nothing.
    last_key_at: float | None


RouteStatus = Literal["connected", "callback_recorded", "caller_hangup", "no_operators", "failed"]


@dataclass(frozen=True)
class RouteRequest:
    """Connect the caller to an operator of `queue` who has every skill in `skills`.

    With `interpreter_language`, the interpreter centre's extension for that language joins the call as a third
    leg in the same mixing bridge once the operator answers.
    """

    queue: str
    skills: tuple[str, ...]
    language: str
    interpreter_language: str | None = None
    ivr_path: tuple[str, ...] = ()
    flow_version: int | None = None
    max_wait_s: float = 120.0
    ring_timeout_s: float = 15.0
    announce_every_s: float = 30.0


@dataclass(frozen=True)
class RouteOutcome:
    status: RouteStatus
    operator_id: str | None = None
    waited_s: float = 0.0
    interpreter_joined: bool = False
    events: tuple[str, ...] = field(default_factory=tuple)  # e.g. "interpreter.busy", "operator.no_answer:op1"


class QueueAnnouncer(Protocol):
    """Prompts the caller hears while waiting, already resolved to media URIs in the caller's language."""

    def position(self, position: int, expected_wait_s: float) -> Sequence[str]: ...

    def callback_recorded(self) -> Sequence[str]: ...


class CallPort(Protocol):
    call_id: str
    caller_number: str

    async def answer(self) -> None: ...

    async def play(self, media: str | Sequence[str], *, interruptible: bool = False) -> bool:
        """Play media URIs in order; True if a key press cut it short (the key stays buffered)."""
        ...

    async def gather(
        self,
        max_digits: int,
        first_timeout: float,
        inter_digit_timeout: float,
        total_timeout: float,
        terminator: str = "",
    ) -> GatherResult: ...

    def flush_digits(self) -> None: ...

    def set_language(self, language: str) -> None: ...

    async def route(self, request: RouteRequest, announcer: QueueAnnouncer) -> RouteOutcome:
        """Queue, ring, bridge; returns when the conversation is over (or could not happen)."""
        ...

    async def transfer(self, target: str) -> bool:
        """Hand the call to another extension or number; True if it was taken."""
        ...

    async def hangup(self) -> None: ...
