"""The active flow per entry number, in memory, kept current by polling the database (hot reload).

`get(number)` is a dictionary look-up: every call does it at its start and keeps the `ActiveFlow` it got, so a
call finishes on the version it started with while the next call gets the newest one.

Changes reach a running gateway however they were made: a publish in this process refreshes at once (the service
notifies us); one from another process (the CLI, another API instance) is seen by polling the highest version
row id, one cheap indexed query a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from ivr_flows.errors import FlowInvalid
from ivr_flows.model import Flow
from ivr_flows.store import FlowStore
from ivr_flows.validate import parse_flow

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ActiveFlow:
    number: str
    version: int
    version_id: int
    content_hash: str
    flow: Flow


class FlowRegistry:
    def __init__(
        self,
        store: FlowStore,
        *,
        poll_interval_s: float = 1.0,
        on_reload: Callable[[dict[str, ActiveFlow]], None] | None = None,
    ) -> None:
        self.store = store
        self.poll_interval_s = poll_interval_s
        self._on_reload = on_reload
        self._flows: dict[str, ActiveFlow] = {}
        self._seen_id = -1
        self._lock = threading.Lock()  # refresh runs in worker threads (poller, API handlers)
        self._task: asyncio.Task[None] | None = None

    def get(self, number: str) -> ActiveFlow | None:
        return self._flows.get(number)

    def all(self) -> dict[str, ActiveFlow]:
        return dict(self._flows)

    def refresh(self) -> bool:
        """Load the active versions if anything changed since the last look; True if something was reloaded."""
        with self._lock:
            latest = self.store.latest_id()
            if latest == self._seen_id:
                return False
            flows: dict[str, ActiveFlow] = {}
            for version in self.store.active_all():
                known = self._flows.get(version.number)
                if known is not None and known.version_id == version.id:
                    flows[version.number] = known
                    continue
                try:
                    flow = parse_flow(version.content, f"{version.number}@v{version.version}")
                except FlowInvalid as exc:
                    # Published content that no longer parses (a code upgrade changed the format): keep serving
                    # what we had rather than leave the number without a flow.
                    log.error("flows.reload_failed", number=version.number, version=version.version, error=str(exc))
                    if known is not None:
                        flows[version.number] = known
                    continue
                flows[version.number] = ActiveFlow(
                    version.number, version.version, version.id, version.content_hash, flow
                )
                log.info("flows.activated", number=version.number, version=version.version)
            self._flows = flows  # one assignment: readers see the old or the new map, never a mix
            self._seen_id = latest
        if self._on_reload is not None:
            self._on_reload(flows)
        return True

    async def start(self) -> None:
        """Load now, then keep polling in the background until `stop`."""
        await asyncio.to_thread(self.refresh)
        if self._task is None:
            self._task = asyncio.create_task(self._poll(), name="flow-registry-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:  # the database may be briefly unavailable: keep the flows we have, try again
                log.exception("flows.poll_failed")
