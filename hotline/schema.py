"""The database schema's history: Alembic migrations (``hotline/migrations``) over every package's tables.

`hotline serve` and the set-up (`hotline db upgrade`) bring a database to the newest revision before anything
uses it. A database made before migrations existed (tables created on first use) is adopted: the baseline
creates only the tables it lacks and keeps every row.
"""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

# Every module that defines tables on config.database.metadata, imported for that alone: the migrations'
# target (autogenerate, the drift check).
import agent_desktop_api.auth
import agent_desktop_api.confirmations
import agent_desktop_api.dispatch
import agent_desktop_api.event_tables
import agent_desktop_api.history
import agent_desktop_api.tickets  # noqa: F401
import assist.ticket.versions  # noqa: F401
import config.database_health  # noqa: F401
import ivr_flows.store  # noqa: F401
import voice.callbacks  # noqa: F401
from config.database import metadata

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: sa.Engine, revision: str = "head", attempts: int = 5) -> None:
    """Apply the migrations up to `revision` in one transaction per step (PostgreSQL: all or nothing).

    Processes that start together on one database (voice and desk, two desks) migrate it at once: the one that
    loses the race sees "table already exists" (or a duplicate version row) and tries again, by then finding the
    work done. Blocking: call it from a thread."""
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as connection:
                command.upgrade(alembic_config(connection), revision)
            return
        except sa.exc.DBAPIError:
            if attempt == attempts:
                raise
            time.sleep(0.3 * attempt)


def downgrade(engine: sa.Engine, revision: str) -> None:
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), revision)


def target_metadata() -> sa.MetaData:
    return metadata
