"""Callers waiting for an operator: first come, first served across queues, longest-idle operator first."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from voice.operators import Operator, OperatorPool


@dataclass(eq=False)
class Waiter:
    call_id: str
    queue: str
    skills: frozenset[str]
    since: float = field(default_factory=time.monotonic)
    exclude: set[str] = field(default_factory=set)  # operators who already let this caller ring out
    ringing: bool = False  # holding a reserved operator: not competing for another one meanwhile


class Router:
    def __init__(self, pool: OperatorPool, average_handle_s: float) -> None:
        self.pool = pool
        self._waiting: list[Waiter] = []
        self._average_handle_s = average_handle_s

    def enqueue(self, call_id: str, queue: str, skills: tuple[str, ...] | frozenset[str]) -> Waiter:
        waiter = Waiter(call_id, queue, frozenset(skills))
        self._waiting.append(waiter)
        return waiter

    async def leave(self, waiter: Waiter) -> None:
        if waiter in self._waiting:
            self._waiting.remove(waiter)
            async with self.pool.changed:  # the next caller in line may now take the free operator
                self.pool.changed.notify_all()

    def waiting(self, queue: str | None = None) -> int:
        return sum(1 for w in self._waiting if queue is None or w.queue == queue)

    def queues(self) -> dict[str, tuple[int, float]]:
        """Each queue with callers in it: how many wait, and the longest wait in seconds."""
        now = time.monotonic()
        found: dict[str, tuple[int, float]] = {}
        for waiter in self._waiting:
            count, longest = found.get(waiter.queue, (0, 0.0))
            found[waiter.queue] = (count + 1, max(longest, now - waiter.since))
        return found

    def position(self, waiter: Waiter) -> int:
        """1 for the next caller of the queue to be served."""
        ahead = 0
        for other in self._waiting:
            if other is waiter:
                break
            if other.queue == waiter.queue:
                ahead += 1
        return ahead + 1

    def expected_wait_s(self, waiter: Waiter) -> float:
        staffed = self.pool.staffed(waiter.skills)
        return self.position(waiter) * self._average_handle_s / max(staffed, 1)

    def record_handle_time(self, seconds: float) -> None:
        """Moving estimate of a conversation's length, for the expected waits callers hear."""
        self._average_handle_s = 0.9 * self._average_handle_s + 0.1 * seconds

    async def acquire(self, waiter: Waiter) -> Operator:
        """Wait until an operator is free for this caller and nobody who came earlier can take them; reserve."""
        async with self.pool.changed:
            while True:
                operator = self._offer(waiter)
                if operator is not None:
                    self.pool.reserve(operator)
                    waiter.ringing = True
                    return operator
                await self.pool.changed.wait()

    def _offer(self, waiter: Waiter) -> Operator | None:
        earlier: list[Waiter] = []
        for other in self._waiting:
            if other is waiter:
                break
            if not other.ringing:
                earlier.append(other)
        for operator in self.pool.free_for(waiter.skills, waiter.exclude):
            if not any(operator.can_serve(e.skills) and operator.id not in e.exclude for e in earlier):
                return operator
        return None

    def taken_elsewhere(self, waiter: Waiter, operator: Operator) -> None:
        """The reserved operator is another node's now (voice.leases): this caller waits for the next one."""
        waiter.ringing = False
        self.pool.taken_elsewhere(operator)

    async def rang_out(self, waiter: Waiter, operator: Operator) -> None:
        """The reserved operator did not answer: skip them for this caller, back in line for the others."""
        waiter.exclude.add(operator.id)
        if all(op.id in waiter.exclude for op in self.pool if op.can_serve(waiter.skills)):
            waiter.exclude.clear()  # everyone was tried: start another round rather than wait for nobody
        waiter.ringing = False
        await self.pool.not_answered(operator)
