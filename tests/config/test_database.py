"""The data layer's files: private from the start."""

from __future__ import annotations

import stat
from pathlib import Path

import sqlalchemy as sa

from config.database import DatabaseSettings, create_engine


def test_the_sqlite_database_is_private(tmp_path: Path) -> None:
    fresh, old = tmp_path / "fresh.db", tmp_path / "old.db"
    old.write_bytes(b"")
    old.chmod(0o644)  # made by an earlier version
    for path in (fresh, old):
        engine = create_engine(DatabaseSettings(url=f"sqlite:///{path}"))
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
            for suffix in ("", "-wal", "-shm"):
                assert stat.S_IMODE(Path(f"{path}{suffix}").stat().st_mode) == 0o600, suffix
        engine.dispose()
