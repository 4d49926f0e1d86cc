"""Operators' phones, their skills and presence, and the choice of who takes the next call.

Presence (available / on call / wrap-up / away) is set here by the gateway itself (ringing, talking, wrap-up)
and from outside through `set_presence` — the operator desktop drives it; until then settings say everyone is
available. The longest-idle available operator with the needed skills is offered the next call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum


class Presence(StrEnum):
    AVAILABLE = "available"
    RINGING = "ringing"  # reserved for one caller while their phone rings
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    AWAY = "away"


@dataclass
class Operator:
    id: str
    skills: frozenset[str]
    endpoint: str
    presence: Presence = Presence.AVAILABLE
    idle_since: float = field(default_factory=time.monotonic)
    registered: bool | None = None  # the phone's SIP registration as Asterisk reports it; None: not known
    elsewhere: str | None = None  # the cluster node that has this operator ringing or talking now (voice.leases)

    @property
    def reachable(self) -> bool:
        return self.registered is not False

    def can_serve(self, skills: Iterable[str]) -> bool:
        return set(skills) <= self.skills


_BUSY = (Presence.RINGING, Presence.ON_CALL, Presence.WRAP_UP)  # with a call of this node


class UnknownOperator(KeyError):
    pass


class OperatorPool:
    def __init__(self, operators: Iterable[Operator], clock: Callable[[], float] = time.monotonic) -> None:
        self._operators = {op.id: op for op in operators}
        self._clock = clock
        self._changed = asyncio.Condition()
        self._wrap_up_timers: dict[str, asyncio.TimerHandle] = {}
        self.freed: list[Callable[[Operator], None]] = []  # told when an operator leaves a call of ours

    def __iter__(self) -> Iterator[Operator]:
        return iter(self._operators.values())

    def get(self, operator_id: str) -> Operator:
        try:
            return self._operators[operator_id]
        except KeyError:
            raise UnknownOperator(operator_id) from None

    def staffed(self, skills: Iterable[str]) -> int:
        """Operators with these skills who are not away (they will take calls sooner or later)."""
        return sum(
            1
            for op in self._operators.values()
            if op.can_serve(skills) and op.presence != Presence.AWAY and op.reachable
        )

    def configured(self, skills: Iterable[str]) -> int:
        return sum(1 for op in self._operators.values() if op.can_serve(skills))

    def free_for(self, skills: Iterable[str], exclude: Iterable[str] = ()) -> list[Operator]:
        """Available operators with the skills, longest idle first."""
        skip = set(exclude)
        free = [
            op
            for op in self._operators.values()
            if op.presence == Presence.AVAILABLE
            and op.elsewhere is None
            and op.reachable
            and op.can_serve(skills)
            and op.id not in skip
        ]
        return sorted(free, key=lambda op: op.idle_since)

    # ---- changes (each wakes the callers waiting for an operator) ----

    async def set_presence(self, operator_id: str, presence: Presence) -> None:
        """Presence from outside (the desktop). An operator on a call keeps that state until it ends."""
        op = self.get(operator_id)
        self._cancel_wrap_up(op.id)
        if op.presence in (Presence.ON_CALL, Presence.RINGING) and presence == Presence.AVAILABLE:
            return
        self._become(op, presence)
        await self._notify()

    async def set_registered(self, operator_id: str, registered: bool) -> None:
        """A phone registered (callers waiting may now get it) or went away (it is no longer offered calls)."""
        op = self._operators.get(operator_id)
        if op is None or op.registered == registered:
            return
        op.registered = registered
        if registered:
            await self._notify()

    def reserve(self, op: Operator) -> None:
        op.presence = Presence.RINGING

    async def not_answered(self, op: Operator) -> None:
        """The phone rang out: back to available, but at the end of the idle order."""
        if op.presence == Presence.RINGING:
            self._become(op, Presence.AVAILABLE)
        await self._notify()

    def taken_elsewhere(self, op: Operator) -> None:
        """Reserved here, but another node has the operator (its lease): not offered here until it is free."""
        if op.presence == Presence.RINGING:
            op.presence = Presence.AVAILABLE
        op.elsewhere = op.elsewhere or "?"

    async def free_elsewhere(self, op: Operator) -> None:
        """The node that had the operator let them go: free here too, as if just back from their call."""
        if op.elsewhere is not None:
            op.elsewhere = None
            op.idle_since = self._clock()
            await self._notify()

    def _become(self, op: Operator, presence: Presence) -> None:
        """The one place an operator's presence changes from outside a call's progress: back to available starts
        their idle time; leaving a call (ringing, talking, wrap-up) for anything else tells `freed` (the other
        nodes may offer them again)."""
        was = op.presence
        if presence == Presence.AVAILABLE and was != Presence.AVAILABLE:
            op.idle_since = self._clock()
        op.presence = presence
        if was in _BUSY and presence not in _BUSY:
            for tell in self.freed:
                tell(op)

    def talking(self, op: Operator) -> None:
        op.presence = Presence.ON_CALL

    async def call_finished(self, op: Operator, wrap_up_s: float) -> None:
        if op.presence not in (Presence.ON_CALL, Presence.RINGING):
            return
        if wrap_up_s <= 0:
            self._become(op, Presence.AVAILABLE)
            await self._notify()
            return
        op.presence = Presence.WRAP_UP
        loop = asyncio.get_running_loop()
        self._wrap_up_timers[op.id] = loop.call_later(wrap_up_s, lambda: asyncio.ensure_future(self._wrap_up_done(op)))

    async def _wrap_up_done(self, op: Operator) -> None:
        self._wrap_up_timers.pop(op.id, None)
        if op.presence == Presence.WRAP_UP:
            self._become(op, Presence.AVAILABLE)
            await self._notify()

    def _cancel_wrap_up(self, operator_id: str) -> None:
        timer = self._wrap_up_timers.pop(operator_id, None)
        if timer is not None:
            timer.cancel()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    @property
    def changed(self) -> asyncio.Condition:
        """Notified whenever an operator may have become free; hold it while checking, then wait on it."""
        return self._changed

    def snapshot(self) -> list[dict[str, object]]:
        return [
            {"id": op.id, "skills": sorted(op.skills), "presence": op.presence.value, "registered": op.registered}
            for op in self._operators.values()
        ]
