"""Operators shared by several media nodes: before a node rings an operator it takes the operator's lease, so no
operator is offered two calls at once across the cluster.

On one node (`LocalLeases`) every lease is granted: the pool's own states suffice. In a cluster (`KvLeases`) a lease
is a key of a NATS JetStream key-value bucket (the bus's server): `create` succeeds for one node only; the holder
deletes it when the operator is free again (after wrap-up) and refreshes it meanwhile, since the bucket forgets a
key a dead node stopped refreshing (`ttl_s`). Every node watches the bucket and marks an operator another node
holds as busy there (`Operator.elsewhere`), so its callers wait for someone actually free.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Protocol

import structlog
from nats.aio.client import Client as Nats
from nats.errors import Error as NatsError
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from voice.operators import OperatorPool

log = structlog.get_logger(__name__)


class OperatorLeases(Protocol):
    async def take(self, operator_id: str, call_id: str) -> bool: ...  # False: another node holds the operator

    def release(self, operator_id: str) -> None: ...  # the operator is free again (idempotent, never blocks)


class LocalLeases:
    """One node: the pool alone decides."""

    async def take(self, operator_id: str, call_id: str) -> bool:
        return True

    def release(self, operator_id: str) -> None:
        return None


class KvLeases:
    """Leases in a JetStream key-value bucket shared by the cluster's nodes (see the module's docstring)."""

    def __init__(self, nc: Nats, bucket: str, node: str, ttl_s: float = 30.0) -> None:
        self.nc = nc
        self.bucket = bucket
        self.node = node
        self.ttl_s = ttl_s
        self.taken = 0
        self.refused = 0
        self._kv: KeyValue | None = None
        self._pool: OperatorPool | None = None
        self._held: dict[str, str] = {}  # operator id -> call id, the leases this node holds
        self._tasks: list[asyncio.Task[None]] = []
        self._releases: set[asyncio.Task[None]] = set()

    async def start(self, pool: OperatorPool) -> None:
        """Open (or create) the bucket, mirror what other nodes hold into `pool`, and follow it from now on."""
        js = self.nc.jetstream()
        try:
            self._kv = await js.key_value(self.bucket)
        except (BucketNotFoundError, NotFoundError):
            self._kv = await js.create_key_value(bucket=self.bucket, ttl=self.ttl_s, history=1)
        self._pool = pool
        pool.freed.append(lambda op: self.release(op.id))
        watcher = await self._kv.watchall()
        self._tasks = [
            asyncio.create_task(self._follow(watcher), name="leases-follow"),
            asyncio.create_task(self._refresh(), name="leases-refresh"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._releases, return_exceptions=True)
        for operator_id in list(self._held):  # leaving: our operators are free for the other nodes
            await self._delete(operator_id)

    async def take(self, operator_id: str, call_id: str) -> bool:
        assert self._kv is not None
        if operator_id in self._held:
            self._held[operator_id] = call_id
            return True
        try:
            await self._kv.create(operator_id, self._value(call_id))
        except KeyWrongLastSequenceError:
            self.refused += 1
            log.info("lease.held_elsewhere", operator=operator_id, call_id=call_id)
            return False
        except NatsError as exc:  # the bus is away: ring no one we cannot be sure of
            log.warning("lease.unavailable", operator=operator_id, error=str(exc) or type(exc).__name__)
            return False
        self._held[operator_id] = call_id
        self.taken += 1
        return True

    def _value(self, call_id: str) -> bytes:
        return json.dumps({"node": self.node, "call": call_id}).encode()

    def release(self, operator_id: str) -> None:
        if operator_id in self._held:
            task = asyncio.ensure_future(self._delete(operator_id))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

    async def _delete(self, operator_id: str) -> None:
        self._held.pop(operator_id, None)
        if self._kv is not None:
            with contextlib.suppress(NatsError):
                await self._kv.delete(operator_id)

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        """Mirror the other nodes' leases into the pool: held elsewhere = busy here."""
        async for entry in watcher:
            if entry is None or self._pool is None:  # None: the initial values are all delivered
                continue
            try:
                operator = self._pool.get(entry.key)
            except KeyError:
                continue
            if entry.operation in ("DEL", "PURGE") or not entry.value:
                await self._pool.free_elsewhere(operator)
                continue
            node = str(json.loads(entry.value).get("node", "?"))
            if node != self.node:
                operator.elsewhere = node

    async def _refresh(self) -> None:
        """Keep our leases alive; drop the marks of leases whose holder stopped refreshing them (a dead node)."""
        assert self._kv is not None and self._pool is not None
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            for operator_id, call_id in list(self._held.items()):
                with contextlib.suppress(NatsError):
                    await self._kv.put(operator_id, self._value(call_id))
            for operator in [op for op in self._pool if op.elsewhere is not None]:
                try:
                    await self._kv.get(operator.id)
                except KeyNotFoundError:
                    await self._pool.free_elsewhere(operator)
                except NatsError:
                    pass


__all__ = ["KvLeases", "LocalLeases", "OperatorLeases"]
