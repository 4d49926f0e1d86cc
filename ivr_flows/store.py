"""Every published flow version, kept in the database (SQLAlchemy Core: SQLite by default, PostgreSQL later).

History is append-only: a rollback re-publishes an earlier version's content as a *new* version (with
`restored_from` naming the one it copies) instead of moving a pointer. So the active version of a number is
simply its newest row, the audit trail shows who rolled back when, and a running gateway notices any change by
polling one number: the highest row id (see registry).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from config.database import as_utc, create_tables, metadata

flow_versions = sa.Table(
    "flow_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("number", sa.String(20), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("author", sa.String(80), nullable=False),
    sa.Column("comment", sa.Text, nullable=False, default=""),
    sa.Column("source", sa.String(255), nullable=True),  # file name or "api"
    sa.Column("restored_from", sa.Integer, nullable=True),  # version this rollback copies
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("number", "version"),
)


def content_hash(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FlowVersion:
    id: int
    number: str
    version: int
    content: str
    content_hash: str
    author: str
    comment: str
    source: str | None
    restored_from: int | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> FlowVersion:
        created = as_utc(row["created_at"])
        return cls(
            id=row["id"],
            number=row["number"],
            version=row["version"],
            content=row["content"],
            content_hash=row["content_hash"],
            author=row["author"],
            comment=row["comment"],
            source=row["source"],
            restored_from=row["restored_from"],
            created_at=created,
        )

    def summary(self) -> dict[str, object]:
        """Everything but the content (lists, history)."""
        return {
            "number": self.number,
            "version": self.version,
            "author": self.author,
            "comment": self.comment,
            "source": self.source,
            "restored_from": self.restored_from,
            "created_at": self.created_at.isoformat(),
            "content_hash": self.content_hash,
        }


class FlowStore:
    """Plain storage; validation happens before anything reaches `add` (see FlowService)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(engine, flow_versions)

    def latest_id(self) -> int:
        """Highest row id over all numbers: changes whenever anything is published or rolled back."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(flow_versions.c.id), 0))).scalar_one())

    def is_empty(self) -> bool:
        return self.latest_id() == 0

    def active(self, number: str) -> FlowVersion | None:
        query = (
            sa.select(flow_versions)
            .where(flow_versions.c.number == number)
            .order_by(flow_versions.c.version.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return FlowVersion.from_row(row) if row is not None else None

    def active_all(self) -> list[FlowVersion]:
        newest = sa.select(sa.func.max(flow_versions.c.id)).group_by(flow_versions.c.number)
        query = sa.select(flow_versions).where(flow_versions.c.id.in_(newest)).order_by(flow_versions.c.number)
        with self.engine.connect() as conn:
            return [FlowVersion.from_row(row) for row in conn.execute(query).mappings()]

    def get(self, number: str, version: int) -> FlowVersion | None:
        query = sa.select(flow_versions).where(flow_versions.c.number == number, flow_versions.c.version == version)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return FlowVersion.from_row(row) if row is not None else None

    def history(self, number: str) -> list[FlowVersion]:
        """Newest first."""
        query = (
            sa.select(flow_versions).where(flow_versions.c.number == number).order_by(flow_versions.c.version.desc())
        )
        with self.engine.connect() as conn:
            return [FlowVersion.from_row(row) for row in conn.execute(query).mappings()]

    def add(
        self,
        number: str,
        content: str,
        *,
        author: str,
        comment: str = "",
        source: str | None = None,
        restored_from: int | None = None,
    ) -> FlowVersion:
        """Append a version; it becomes the active one. Two concurrent publishers cannot get the same number:
        the unique (number, version) constraint makes the loser retry with the next one."""
        for attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    current = conn.execute(
                        sa.select(sa.func.coalesce(sa.func.max(flow_versions.c.version), 0)).where(
                            flow_versions.c.number == number
                        )
                    ).scalar_one()
                    values = {
                        "number": number,
                        "version": int(current) + 1,
                        "content": content,
                        "content_hash": content_hash(content),
                        "author": author,
                        "comment": comment,
                        "source": source,
                        "restored_from": restored_from,
                        "created_at": datetime.now(UTC),
                    }
                    new_id = conn.execute(sa.insert(flow_versions).values(**values)).inserted_primary_key
                    assert new_id is not None
                    row = conn.execute(sa.select(flow_versions).where(flow_versions.c.id == new_id[0])).mappings()
                    return FlowVersion.from_row(row.one())
            except IntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")
