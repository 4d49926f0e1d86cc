"""The schema through Alembic: a new database, one made before migrations existed, down and up again, on SQLite
and on a real PostgreSQL server; after each, the tables are exactly what the code declares."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from agent_desktop_api.auth import AuthService
from agent_desktop_api.event_log import EventLog
from config.database import DatabaseSettings, create_engine
from events.bus import CallEvent
from hotline import schema
from tests.support.postgres import pg_engine, postgres_url

__all__ = ["pg_engine", "postgres_url"]

PASSWORD = "correct horse battery"
SEGMENT = {"segment_id": "s1", "speaker": "caller", "start_ms": 0, "end_ms": 900, "confidence": 0.9}


def drift(engine: sa.Engine) -> list[object]:
    """What Alembic would change to make the database match the code's tables (empty: they agree)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, schema.target_metadata()))


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


@pytest.fixture
def sqlite_engine(tmp_path: object) -> Iterator[sa.Engine]:
    engine = create_engine(DatabaseSettings(url=f"sqlite:///{tmp_path}/hotline.db"))
    yield engine
    engine.dispose()


def test_a_new_database_gets_every_table_the_code_uses(sqlite_engine: sa.Engine) -> None:
    assert schema.current_revision(sqlite_engine) is None
    schema.upgrade(sqlite_engine)
    assert schema.current_revision(sqlite_engine) == schema.head_revision()
    assert drift(sqlite_engine) == []
    auth = AuthService(sqlite_engine)
    auth.add_user("op1001", "operator", PASSWORD)
    assert auth.login("op1001", PASSWORD) is not None


def test_a_database_from_before_migrations_is_adopted_with_its_rows(sqlite_engine: sa.Engine) -> None:
    AuthService(sqlite_engine).add_user("op1001", "operator", PASSWORD)  # tables made on first use, no revision
    assert "users" in tables(sqlite_engine) and "flow_versions" not in tables(sqlite_engine)
    schema.upgrade(sqlite_engine)
    assert schema.current_revision(sqlite_engine) == schema.head_revision()
    assert drift(sqlite_engine) == []
    assert AuthService(sqlite_engine).login("op1001", PASSWORD) is not None


def test_tickets_filed_before_the_history_are_found_by_their_category(sqlite_engine: sa.Engine) -> None:
    schema.upgrade(sqlite_engine, "0002")
    filed = json.dumps({"category_code": "02.03.01", "district": "海淀区", "summary": "路灯不亮"}, ensure_ascii=False)
    with sqlite_engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO tickets (call_id, edits, status, ticket, updated_at) "
                "VALUES ('c1', '{}', 'submitted', :ticket, '2026-12-01 10:00:00')"
            ),
            {"ticket": filed},
        )
    schema.upgrade(sqlite_engine)
    assert drift(sqlite_engine) == []
    with sqlite_engine.connect() as conn:
        row = conn.execute(sa.text("SELECT category_code, district FROM tickets WHERE call_id = 'c1'")).one()
    assert tuple(row) == ("02.03.01", "海淀区")
    schema.downgrade(sqlite_engine, "0002")  # and back: the history goes, the ticket stays
    assert "call_records" not in tables(sqlite_engine)
    with sqlite_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM tickets")).scalar() == 1


@pytest.mark.slow  # three processes, each importing the schema
def test_processes_that_start_together_migrate_one_database_without_failing(tmp_path: object) -> None:
    """Voice and desk (or two desks) start at once on a new database: all come up, at the newest revision.
    (Processes, not threads: Alembic's migration context is global to a process.)"""
    url = f"sqlite:///{tmp_path}/together.db"
    code = (
        "import sys, time; from config.database import DatabaseSettings, create_engine; from hotline import schema; "
        "engine = create_engine(DatabaseSettings(url=sys.argv[1])); "
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); schema.upgrade(engine)"
    )
    at = time.time() + 3  # after every process has imported: they migrate at the same moment
    procs = [subprocess.Popen([sys.executable, "-c", code, url, str(at)], stderr=subprocess.PIPE) for _ in range(3)]
    errors = [proc.communicate(timeout=60)[1].decode() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], errors
    engine = create_engine(DatabaseSettings(url=url))
    assert schema.current_revision(engine) == schema.head_revision()
    assert drift(engine) == []
    engine.dispose()


def test_down_to_nothing_and_up_again(sqlite_engine: sa.Engine) -> None:
    schema.upgrade(sqlite_engine)
    schema.downgrade(sqlite_engine, "base")
    assert tables(sqlite_engine) <= {"alembic_version"}
    schema.upgrade(sqlite_engine)
    assert drift(sqlite_engine) == []


@pytest.mark.slow  # four `hotline` processes, each importing the whole gateway
def test_the_cli_brings_the_database_up_to_date_and_says_so(tmp_path: object) -> None:
    env = {**os.environ, "HOTLINE_DATABASE__URL": f"sqlite:///{tmp_path}/cli.db"}

    def hotline(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "hotline.cli", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    behind = hotline("db", "status")
    assert behind.returncode == 1 and "not migrated" in behind.stdout
    first = hotline("db", "upgrade")
    assert first.returncode == 0 and f"database at {schema.head_revision()} (was empty)" in first.stdout
    again = hotline("db", "upgrade")
    assert again.returncode == 0 and "(up to date)" in again.stdout
    assert hotline("db", "status").returncode == 0


# ---- PostgreSQL ----


@pytest.mark.slow
async def test_postgresql_gets_the_same_schema_and_the_desk_works_on_it(pg_engine: sa.Engine) -> None:
    schema.upgrade(pg_engine)
    assert schema.current_revision(pg_engine) == schema.head_revision()
    assert drift(pg_engine) == []
    schema.upgrade(pg_engine)  # a second start changes nothing
    auth = AuthService(pg_engine)
    auth.add_user("op1001", "operator", PASSWORD)
    issued = auth.login("op1001", PASSWORD)
    assert issued is not None and auth.authenticate(issued.token) is not None
    log = EventLog(pg_engine)
    stored = await log.ingest(
        [
            CallEvent.loose("call.answered", "c1", {"operator_id": "op1001"}),
            CallEvent.loose("transcript.final", "c1", {**SEGMENT, "text": "朝阳区望京街道"}),
        ]
    )
    assert [(m.operator_id, m.seq, m.type) for m in stored] == [
        ("op1001", 1, "call.answered"),
        ("op1001", 2, "transcript.final"),
    ]


@pytest.mark.slow
def test_postgresql_down_to_nothing_and_up_again(pg_engine: sa.Engine) -> None:
    schema.upgrade(pg_engine)
    schema.downgrade(pg_engine, "base")
    assert tables(pg_engine) <= {"alembic_version"}
    schema.upgrade(pg_engine)
    assert drift(pg_engine) == []
