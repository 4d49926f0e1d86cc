"""The callers' line across media nodes: each node shares its waiting callers in a NATS JetStream key-value bucket,
and mirrors the other nodes' into its Router (`Router.remote`), so the order (first come, first served), the
positions callers hear and who may take a free operator are the cluster's, not the node's.

A key is a waiting call's id; its value says which queue, the skills, when the caller arrived (wall clock: the
order across nodes), which operator is reserved for them (ringing), and whom they already rang out on. Each node
puts its own and deletes them when they leave the line, in order (one writer task: a late put never revives a
caller who left). The bucket forgets what a dead node stopped refreshing (`ttl_s`); a node also forgets a caller it has
not heard of for `ttl_s`, so a dead node's callers stop holding the others back within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import structlog
from nats.aio.client import Client as Nats
from nats.errors import Error as NatsError
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from voice.router import Router, Waiter

log = structlog.get_logger(__name__)

MAX_VALUE_BYTES = 8192


class KvQueue:
    """Shares `router`'s line with the other nodes' (see the module's docstring)."""

    def __init__(
        self, nc: Nats, bucket: str, node: str, ttl_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.nc = nc
        self.bucket = bucket
        self.node = node
        self.ttl_s = ttl_s
        self.clock = clock
        self._kv: KeyValue | None = None
        self._router: Router | None = None
        self._outbox: asyncio.Queue[tuple[str, bytes | None]] = asyncio.Queue()
        self._heard: dict[str, float] = {}  # call id -> when we last heard of that remote caller
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, router: Router) -> None:
        js = self.nc.jetstream()
        try:
            self._kv = await js.key_value(self.bucket)
        except (BucketNotFoundError, NotFoundError):
            self._kv = await js.create_key_value(bucket=self.bucket, ttl=self.ttl_s, history=1)
        self._router = router
        router.changed.append(self._changed)
        watcher = await self._kv.watchall()
        self._tasks = [
            asyncio.create_task(self._follow(watcher), name="line-follow"),
            asyncio.create_task(self._write(), name="line-write"),
            asyncio.create_task(self._refresh(), name="line-refresh"),
        ]

    async def stop(self) -> None:
        """Leave the line: our callers are gone from the others' view at once (not after ttl_s)."""
        if self._router is not None:
            for waiter in self._router.mine():
                self._changed(waiter, True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), 2.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- ours, to the others ----

    def _changed(self, waiter: Waiter, gone: bool) -> None:
        self._outbox.put_nowait((waiter.call_id, None if gone else self._value(waiter)))

    def _value(self, waiter: Waiter) -> bytes:
        return json.dumps(
            {
                "node": self.node,
                "queue": waiter.queue,
                "skills": sorted(waiter.skills),
                "arrived": waiter.arrived,
                "holding": waiter.holding,
                "exclude": sorted(waiter.exclude),
            }
        ).encode()

    async def _write(self) -> None:
        assert self._kv is not None
        while True:
            key, value = await self._outbox.get()
            try:
                if value is None:
                    await self._kv.delete(key)
                else:
                    await self._kv.put(key, value)
            except NatsError as exc:  # the bus is away: the next refresh puts ours again; the TTL ends the rest
                log.warning("line.share_failed", call_id=key, error=str(exc) or type(exc).__name__)
            finally:
                self._outbox.task_done()

    async def _refresh(self) -> None:
        """Keep our callers in the bucket; forget the others' that nobody refreshed (their node is gone)."""
        assert self._router is not None
        router = self._router
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            for waiter in router.mine():
                self._changed(waiter, False)
            now = self.clock()
            stale = [call_id for call_id, heard in self._heard.items() if now - heard > self.ttl_s]
            for call_id in stale:
                log.warning("line.caller_forgotten", call_id=call_id, silent_s=round(now - self._heard[call_id], 1))
                await self._forget(call_id)

    # ---- theirs, into our router ----

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is None:  # the initial values are all delivered
                continue
            if entry.operation in ("DEL", "PURGE") or not entry.value:
                await self._forget(entry.key)
                continue
            try:
                remote = self._waiter(entry.key, entry.value)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("line.entry_refused", call_id=entry.key, error=str(exc)[:200])
                continue
            if remote is None:
                continue
            assert self._router is not None
            self._router.remote[entry.key] = remote
            self._heard[entry.key] = self.clock()
            await self._wake()

    def _waiter(self, call_id: str, raw: bytes) -> Waiter | None:
        if len(raw) > MAX_VALUE_BYTES:
            raise ValueError("too large")
        value: dict[str, Any] = json.loads(raw)
        if value["node"] == self.node:
            return None  # ours, echoed by the watch
        return Waiter(
            call_id,
            str(value["queue"]),
            frozenset(str(skill) for skill in value["skills"]),
            exclude={str(op) for op in value.get("exclude", [])},
            holding=str(value["holding"]) if value.get("holding") else None,
            arrived=float(value["arrived"]),
        )

    async def _forget(self, call_id: str) -> None:
        self._heard.pop(call_id, None)
        if self._router is not None and self._router.remote.pop(call_id, None) is not None:
            await self._wake()

    async def _wake(self) -> None:
        """A remote caller came, left, or changed: our callers waiting for an operator look again."""
        assert self._router is not None
        async with self._router.pool.changed:
            self._router.pool.changed.notify_all()


__all__ = ["KvQueue"]
