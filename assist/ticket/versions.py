"""Versions of the problem catalogue, kept in the database: validate, publish, roll back, history.

Until a version is published the shipped file (`ticket.catalogue_file`) is the catalogue. History is append-only
as with the flows: a rollback publishes an earlier version's content again as a new version (`restored_from`
names it). Every process that uses the catalogue polls the highest row id (`CatalogueVersions.latest_id`) and
reloads when it changes, so a publication reaches the ticket assistant and the desks of every process within
the poll interval, without a restart.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from assist.ticket.catalogue import Catalogue, CatalogueError, load_catalogue, parse_catalogue
from config.database import as_utc, create_tables, metadata

MAX_CATALOGUE_BYTES = 512 * 1024

catalogue_versions = sa.Table(
    "catalogue_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version", sa.Integer, nullable=False, unique=True),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("leaves", sa.Integer, nullable=False),
    sa.Column("author", sa.String(80), nullable=False),
    sa.Column("comment", sa.Text, nullable=False, default=""),
    sa.Column("restored_from", sa.Integer, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


class VersionNotFound(LookupError):
    pass


@dataclass(frozen=True)
class CatalogueVersion:
    version: int
    content_hash: str
    leaves: int
    author: str
    comment: str
    restored_from: int | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> CatalogueVersion:
        return cls(
            row["version"], row["content_hash"], row["leaves"], row["author"], row["comment"], row["restored_from"],
            as_utc(row["created_at"]),
        )  # fmt: skip

    def summary(self) -> dict[str, object]:
        return {**asdict(self), "created_at": self.created_at.isoformat()}


def parse(content: str, source: str = "catalogue") -> Catalogue:
    """A catalogue from YAML text (bounded); CatalogueError names what is wrong (entry by entry)."""
    if len(content.encode("utf-8")) > MAX_CATALOGUE_BYTES:
        raise CatalogueError(f"{source}: larger than {MAX_CATALOGUE_BYTES} bytes")
    return parse_catalogue(content, source)


class CatalogueVersions:
    def __init__(self, engine: Engine, shipped: Path) -> None:
        self.engine = engine
        self.shipped = shipped
        try:
            create_tables(engine, catalogue_versions)
        except sa.exc.DatabaseError:  # another process (a migration) made it between the check and the create
            if not sa.inspect(engine).has_table(catalogue_versions.name):
                raise

    def latest_id(self) -> int:
        with self.engine.connect() as conn:
            query = sa.select(sa.func.coalesce(sa.func.max(catalogue_versions.c.id), 0))
            return int(conn.execute(query).scalar_one())

    def _newest(self) -> RowMapping | None:
        query = sa.select(catalogue_versions).order_by(catalogue_versions.c.version.desc()).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(query).mappings().first()

    def active(self) -> tuple[Catalogue, CatalogueVersion | None]:
        """The catalogue in force and its version (None: the shipped file, nothing published yet)."""
        row = self._newest()
        if row is None:
            return load_catalogue(self.shipped), None
        return parse(row["content"], f"catalogue version {row['version']}"), CatalogueVersion.from_row(row)

    def content(self, version: int | None = None) -> str:
        """The YAML of `version` (None: the one in force, the shipped file before any publication)."""
        if version is None:
            row = self._newest()
            return self.shipped.read_text(encoding="utf-8") if row is None else str(row["content"])
        query = sa.select(catalogue_versions.c.content).where(catalogue_versions.c.version == version)
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar_one_or_none()
        if found is None:
            raise VersionNotFound(f"no catalogue version {version}")
        return str(found)

    def check(self, content: str) -> int:
        return check(content)

    def history(self) -> list[CatalogueVersion]:
        query = sa.select(catalogue_versions).order_by(catalogue_versions.c.version.desc())
        with self.engine.connect() as conn:
            return [CatalogueVersion.from_row(row) for row in conn.execute(query).mappings()]

    def publish(self, content: str, *, author: str, comment: str = "") -> CatalogueVersion:
        """Validate, then store as the next version (it is in force at once). CatalogueError when invalid."""
        catalogue = parse(content, "the new catalogue")
        return self._add(content, len(catalogue.leaves()), author, comment, None)

    def rollback(self, *, author: str, to: int | None = None, comment: str = "") -> CatalogueVersion:
        """Publish an earlier version's content again (default: the one before the version in force; with only
        one version, the shipped file)."""
        history = self.history()
        if not history:
            raise VersionNotFound("nothing was published: the shipped catalogue is in force")
        if to is None:
            content = self.content(history[1].version) if len(history) > 1 else self.shipped.read_text("utf-8")
            source = history[1].version if len(history) > 1 else None
        else:
            content, source = self.content(to), to
        catalogue = parse(content, f"catalogue version {source}")
        return self._add(content, len(catalogue.leaves()), author, comment, source)

    def _add(self, content: str, leaves: int, author: str, comment: str, restored: int | None) -> CatalogueVersion:
        for attempt in range(5):  # two publishers at once: the unique version makes the loser take the next
            try:
                with self.engine.begin() as conn:
                    current = conn.execute(
                        sa.select(sa.func.coalesce(sa.func.max(catalogue_versions.c.version), 0))
                    ).scalar_one()
                    values = {
                        "version": int(current) + 1,
                        "content": content,
                        "content_hash": hashlib.sha256(content.encode("utf-8")).hexdigest(),
                        "leaves": leaves,
                        "author": author,
                        "comment": comment,
                        "restored_from": restored,
                        "created_at": datetime.now(UTC),
                    }
                    conn.execute(sa.insert(catalogue_versions).values(**values))
                    row = conn.execute(
                        sa.select(catalogue_versions).where(catalogue_versions.c.version == values["version"])
                    ).mappings()
                    return CatalogueVersion.from_row(row.one())
            except IntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")


def check(content: str) -> int:
    """Leaves of a valid catalogue text; CatalogueError (a ValueError) names what is wrong."""
    return len(parse(content, "the catalogue").leaves())
