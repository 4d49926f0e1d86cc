"""Watches the database from its own thread: can it be read and written, and is it still the same file?

`/readyz` reads the state this keeps (never a query of its own), so a probe answers at once however slow the
database is. For SQLite it also notices the file being deleted or replaced underneath the running gateway: pooled
connections would go on writing into the old, unlinked file, so the engine is disposed; the event log's next
write then finds the new file, creates its tables and moves to a new stream epoch.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from config.database import create_tables, metadata, private_file

log = structlog.get_logger(__name__)

database_probe = sa.Table(
    "database_probe",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("beat", sa.Integer, nullable=False),
)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


class DatabaseMonitor:
    def __init__(self, engine: Engine, interval_s: float = 1.0) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.ok = True
        self.problem: str | None = None
        database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
        self._file = Path(database) if database and database != ":memory:" else None
        self._identity = _identity(self._file) if self._file is not None else None
        self._beat = 0
        self._probe_table = False  # created in this database
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self.check()
            self._thread = threading.Thread(target=self._run, name="database-monitor", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()

    def check(self) -> bool:
        """One probe (blocking): file identity, then a write that must commit."""
        self._follow_file()
        self._beat += 1
        try:
            if not self._probe_table:
                create_tables(self.engine, database_probe)
                self._probe_table = True
            with self.engine.begin() as conn:
                if conn.execute(sa.update(database_probe).values(beat=self._beat)).rowcount == 0:
                    conn.execute(sa.insert(database_probe).values(id=1, beat=self._beat))
        except sa.exc.SQLAlchemyError as exc:
            if "no such table" in str(exc):
                self._probe_table = False  # a new, empty database: create the probe table next time
            self._set(False, f"{type(getattr(exc, 'orig', None) or exc).__name__}: {getattr(exc, 'orig', exc)}")
            return False
        self._set(True, None)
        return True

    def _follow_file(self) -> None:
        if self._file is None:
            return
        now = _identity(self._file)
        if now == self._identity:
            return
        log.error("database.file_replaced", path=str(self._file), present=now is not None)
        self.engine.dispose()  # pooled connections still point at the old file
        private_file(self._file)  # SQLite would create the new one with the process umask
        self._identity = _identity(self._file)
        self._probe_table = False

    def _set(self, ok: bool, problem: str | None) -> None:
        if ok != self.ok:
            (log.info if ok else log.error)("database.ok" if ok else "database.down", problem=problem)
        self.ok, self.problem = ok, problem
