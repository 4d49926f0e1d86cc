"""The one data layer: SQLAlchemy 2.0 Core over SQLite by default, PostgreSQL for a cluster (DESIGN §6).

Every package defines its tables on `metadata` below; no ORM, so the SQL we run is the SQL we read. The schema's
history is the Alembic migrations of the composition root (`hotline db upgrade`, run by `hotline serve` and the
set-up; a test checks they and these tables agree on SQLite and PostgreSQL). `create_tables` still makes a
missing table on first use, for a store opened on a database of its own (tests, tools).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from config.database_settings import DatabaseSettings
from config.paths import PROJECT_ROOT

__all__ = ["DatabaseSettings", "create_engine", "create_tables", "database_settings", "metadata", "private_file"]

# Named constraints keep future migrations (Alembic) deterministic across SQLite and PostgreSQL.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def database_settings(settings: object) -> DatabaseSettings:
    """The `database:` section of the gateway settings, or the defaults where it is not wired in yet."""
    value = getattr(settings, "database", None)
    return value if isinstance(value, DatabaseSettings) else DatabaseSettings()


def resolve_url(url: str, base_dir: Path) -> URL:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        if not path.is_absolute():
            path = base_dir / path
        path.parent.mkdir(parents=True, exist_ok=True)
        parsed = parsed.set(database=str(path))
    return parsed


def create_engine(settings: DatabaseSettings, base_dir: Path | None = None) -> Engine:
    """Engine for the settings; SQLite gets WAL (a CLI publish and a polling gateway do not block each other)."""
    url = resolve_url(settings.url, base_dir or PROJECT_ROOT)
    kwargs: dict[str, Any] = {"echo": settings.echo, "future": True}
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, **kwargs)
    kwargs["connect_args"] = {"check_same_thread": False}
    if not url.database or url.database == ":memory:":
        kwargs["poolclass"] = StaticPool  # one shared connection, or each would see its own empty database
    if url.database and url.database != ":memory:":
        private_file(Path(url.database))
    engine = sa.create_engine(url, **kwargs)
    busy = settings.busy_timeout_ms

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if url.database and url.database != ":memory:":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def private_file(path: Path) -> None:
    """Create `path` readable by its owner only, or take group/other access away from an existing one: the
    database holds password hashes and what callers said. SQLite gives its -wal and -shm files the same mode."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def create_tables(engine: Engine, *tables: sa.Table) -> None:
    metadata.create_all(engine, tables=list(tables), checkfirst=True)


def as_utc(value: datetime) -> datetime:
    """A timestamp read back from the database: SQLite drops the zone, and every timestamp we write is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def as_utc_or_none(value: datetime | None) -> datetime | None:
    """`as_utc` of a timestamp column that may be empty."""
    return None if value is None else as_utc(value)


def insert_unless_taken(conn: sa.Connection, table: sa.Table, row: dict[str, Any]) -> bool:
    """Insert `row`; False if a unique key of it is taken. On PostgreSQL in a savepoint, so the transaction goes on
    (several desk instances store the same call at once); SQLite has one writing process, and pysqlite's
    savepoints would end the outer transaction early."""
    if conn.dialect.name != "postgresql":
        try:
            conn.execute(sa.insert(table).values(**row))
        except sa.exc.IntegrityError:
            return False
        return True
    try:
        with conn.begin_nested():
            conn.execute(sa.insert(table).values(**row))
    except sa.exc.IntegrityError:
        return False
    return True
