"""The `database:` settings section, apart from the engine code so that reading settings loads no SQLAlchemy."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DatabaseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        "sqlite:///var/hotline.db",
        description="SQLAlchemy URL. A relative SQLite path is relative to the project root; "
        "PostgreSQL: postgresql+psycopg://user@host/db (password via HOTLINE_DATABASE__URL).",
    )
    echo: bool = Field(False, description="Log every SQL statement (debugging).")
    busy_timeout_ms: int = Field(5000, ge=0, description="SQLite: wait this long for a writer's lock.")
