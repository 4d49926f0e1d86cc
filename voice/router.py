"""Callers waiting for an operator: first come, first served across queues, longest-idle operator first.

In a cluster the line is the cluster's: `remote` holds the callers waiting on the other nodes (voice.shared_queue
keeps it), and they count like ours for the order, the positions and who may take a free operator; `changed`
tells that module what to share of ours.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from voice.operators import Operator, OperatorPool


@dataclass(eq=False)
class Waiter:
    call_id: str
    queue: str
    skills: frozenset[str]
    since: float = field(default_factory=time.monotonic)
    exclude: set[str] = field(default_factory=set)  # operators who already let this caller ring out
    holding: str | None = None  # the operator reserved for this caller (ringing): not competing for another
    arrived: float = field(default_factory=time.time)  # wall clock: the order across nodes

    def before(self, other: Waiter) -> bool:
        return (self.arrived, self.call_id) < (other.arrived, other.call_id)


WaiterChanged = Callable[[Waiter, bool], None]  # (the waiter, gone): what the other nodes must learn


class Router:
    def __init__(self, pool: OperatorPool, average_handle_s: float) -> None:
        self.pool = pool
        self._waiting: list[Waiter] = []
        self._average_handle_s = average_handle_s
        self.remote: dict[str, Waiter] = {}  # call id -> a caller waiting on another node (see the docstring)
        self.changed: list[WaiterChanged] = []

    def enqueue(self, call_id: str, queue: str, skills: tuple[str, ...] | frozenset[str]) -> Waiter:
        waiter = Waiter(call_id, queue, frozenset(skills))
        self._waiting.append(waiter)
        self._tell(waiter)
        return waiter

    async def leave(self, waiter: Waiter) -> None:
        if waiter in self._waiting:
            self._waiting.remove(waiter)
            self._tell(waiter, gone=True)
            async with self.pool.changed:  # the next caller in line may now take the free operator
                self.pool.changed.notify_all()

    def _tell(self, waiter: Waiter, gone: bool = False) -> None:
        for listener in self.changed:
            listener(waiter, gone)

    def mine(self) -> list[Waiter]:
        return list(self._waiting)

    def _ahead_of(self, waiter: Waiter) -> list[Waiter]:
        """Everyone in the line before `waiter`: ours in the order they came, and the other nodes'."""
        ours = self._waiting[: self._waiting.index(waiter)] if waiter in self._waiting else []
        return ours + [other for other in self.remote.values() if other.before(waiter)]

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
        """1 for the next caller of the queue to be served (cluster-wide when the line is shared)."""
        return 1 + sum(1 for other in self._ahead_of(waiter) if other.queue == waiter.queue)

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
                    waiter.holding = operator.id
                    self._tell(waiter)
                    return operator
                await self.pool.changed.wait()

    def _offer(self, waiter: Waiter) -> Operator | None:
        earlier = [other for other in self._ahead_of(waiter) if other.holding is None]
        # An operator another node reserved for its caller: its lease may not have reached us yet.
        held = {other.holding for other in self.remote.values() if other.holding is not None}
        for operator in self.pool.free_for(waiter.skills, waiter.exclude | held):
            if not any(operator.can_serve(e.skills) and operator.id not in e.exclude for e in earlier):
                return operator
        return None

    def taken_elsewhere(self, waiter: Waiter, operator: Operator) -> None:
        """The reserved operator is another node's now (voice.leases): this caller waits for the next one."""
        waiter.holding = None
        self._tell(waiter)
        self.pool.taken_elsewhere(operator)

    async def rang_out(self, waiter: Waiter, operator: Operator) -> None:
        """The reserved operator did not answer: skip them for this caller, back in line for the others."""
        waiter.exclude.add(operator.id)
        if all(op.id in waiter.exclude for op in self.pool if op.can_serve(waiter.skills)):
            waiter.exclude.clear()  # everyone was tried: start another round rather than wait for nobody
        waiter.holding = None
        self._tell(waiter)
        await self.pool.not_answered(operator)
