"""Which desk API instance writes the event log several of them share: the one holding a PostgreSQL advisory lock.

Every instance tries to take the lock every `check_s`, on a connection of its own that the leader keeps open.
PostgreSQL frees the lock the moment that connection ends (the process was killed, the network broke, the server
restarted), and another instance takes it within `check_s`. The lock only elects: what keeps two writers from both
storing, should an old leader not know yet, is the position's compare-and-set (agent_desktop_api.bus_position).
Databases without such locks (SQLite: one desk process) have one instance, and it leads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from events.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

LOCK_KEY = 0x1234_5000_0001  # the desk event log's writer (a 64-bit advisory lock key of this project)
CHECK_S = 1.0
RELEASE_TIMEOUT_S = 5.0

Step = Callable[[], Awaitable[None]]


class Leadership:
    def __init__(self, engine: Engine, lead: Step, follow: Step, check_s: float = CHECK_S) -> None:
        self.engine = engine
        self.lead = lead  # become the writer (raises: not now, try again later)
        self.follow = follow  # deliver what the writer stores
        self.check_s = check_s
        self.leading = False
        self.changes = 0  # times this instance became the leader
        self._conn: Connection | None = None
        self._resign = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        # Its own thread: the lock's connection never waits behind other work (or holds the shared pool).
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="desk-leadership")

    @property
    def lockable(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="desk-leadership")

    def resign(self) -> None:
        """The log found another writer: let go of the lock and follow (called on the loop)."""
        self._resign.set()

    async def stop(self, finish: Step | None = None) -> None:
        """Stop electing, run `finish` (stop the log), then let go of the lock for the next instance."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        if finish is not None:
            await finish()
        if self._stopped:
            return
        self._stopped = True
        self.leading = False
        try:  # bounded: a database call stuck on a dead network must not hold up the process's exit
            await asyncio.wait_for(self._call(self._release), RELEASE_TIMEOUT_S)
        except TimeoutError:
            log.warning("desktop.lock_release_timeout")
        self._thread.shutdown(wait=False)

    async def _run(self) -> None:
        await self.follow()
        while True:
            if self._resign.is_set():
                self._resign.clear()
                await self._step_down("the log found another writer")
            elif not self.leading:
                await self._try_to_lead()
            elif not await self._call(self._still_held):
                await self._step_down("the lock's database connection ended")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._resign.wait(), self.check_s)

    async def _try_to_lead(self) -> None:
        try:
            held = await self._call(self._take)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("desktop.leadership_unavailable", error=str(exc)[:200])
            return
        if not held:
            return
        try:
            await self.lead()
        except Exception as exc:  # the bus or the database not ready: let another instance (or us) try again
            log.warning("desktop.lead_failed", error=str(exc)[:300] or type(exc).__name__)
            await self._call(self._release)
            await self.follow()
            return
        self.leading = True
        self.changes += 1
        log.info("desktop.leading")

    async def _step_down(self, why: str) -> None:
        log.warning("desktop.not_leading", why=why)
        self.leading = False
        await self._call(self._release)
        await self.follow()

    async def _call(self, work: Callable[[], bool | None]) -> bool | None:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    # ---- on the leadership thread ----

    def _take(self) -> bool:
        if not self.lockable:
            return True
        if self._conn is None:
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            return bool(self._conn.execute(sa.select(sa.func.pg_try_advisory_lock(LOCK_KEY))).scalar())
        except sa.exc.SQLAlchemyError:
            self._release()
            raise

    def _still_held(self) -> bool:
        if not self.lockable:
            return True
        if self._conn is None:
            return False
        try:
            self._conn.execute(sa.select(1))
        except sa.exc.SQLAlchemyError:
            return False
        return True

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                conn.invalidate()  # closes the session for good: the lock goes with it (never back to the pool)
                conn.close()
