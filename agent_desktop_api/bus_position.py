"""Where the desk event log's writer is in the bus's stream (events.replay), stored with what it wrote.

One row: the stream, the last sequence stored, and who writes (an id each writer draws when it takes over). A new
writer claims the row (compare-and-set on the position it read); the writer moves it in the same transaction as
the events it numbered, naming itself and the position it stored last. So a writer that was replaced, even one
that does not know yet (its lock's connection broke, it still runs), updates nothing from then on and must stop.
The update comes first in the transaction: its row lock orders writers, so the events' ids grow in commit order,
which is what the other instances' tail relies on.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from config.database import create_tables, metadata
from events.replay import StreamPosition

desktop_bus_position = sa.Table(
    "desktop_bus_position",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("stream", sa.String(64), nullable=False),  # the stream's identity (its creation time)
    sa.Column("seq", sa.BigInteger, nullable=False),  # the last stream sequence whose events are stored
    sa.Column("writer", sa.String(32), nullable=False),  # the id of the writer that stores now
)


class WriterReplaced(Exception):
    """The stored position moved under this writer: another desk API instance writes the event log now."""


def read_position(engine: Engine) -> StreamPosition | None:
    create_tables(engine, desktop_bus_position)
    with engine.connect() as conn:
        row = conn.execute(sa.select(desktop_bus_position).where(desktop_bus_position.c.id == 1)).first()
    return StreamPosition(row.stream, int(row.seq)) if row is not None else None


def claim_position(engine: Engine, writer: str, stored: StreamPosition | None, start: StreamPosition) -> None:
    """Make the row say `start`, written by `writer` from now on, if it still says `stored`; else WriterReplaced
    (another instance stored or claimed since we read it)."""
    table = desktop_bus_position.c
    with engine.begin() as conn:
        if stored is None:
            try:
                row = {"id": 1, "stream": start.stream, "seq": start.seq, "writer": writer}
                conn.execute(sa.insert(desktop_bus_position).values(**row))
            except sa.exc.IntegrityError:
                raise WriterReplaced("another instance stored a position first") from None
            return
        claimed = conn.execute(
            sa.update(desktop_bus_position)
            .where(table.id == 1, table.stream == stored.stream, table.seq == stored.seq)
            .values(stream=start.stream, seq=start.seq, writer=writer)
        )
        if claimed.rowcount != 1:
            raise WriterReplaced(f"the stored position is no longer {stored.stream}#{stored.seq}")


def move_position(conn: Connection, writer: str, before: StreamPosition, after: StreamPosition) -> None:
    """Compare-and-set inside the writer's transaction (see the module's docstring)."""
    table = desktop_bus_position.c
    moved = conn.execute(
        sa.update(desktop_bus_position)
        .where(table.id == 1, table.writer == writer, table.stream == before.stream, table.seq == before.seq)
        .values(stream=after.stream, seq=after.seq)
    )
    if moved.rowcount != 1:
        raise WriterReplaced(f"another writer claimed the log (this one stored up to {before.stream}#{before.seq})")


__all__ = ["WriterReplaced", "claim_position", "desktop_bus_position", "move_position", "read_position"]
