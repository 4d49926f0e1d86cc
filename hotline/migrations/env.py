"""Alembic's entry: runs the migrations on the connection `hotline.schema` hands over (never a URL of its own,
so the gateway's engine settings, SQLite pragmas included, apply)."""

from __future__ import annotations

from alembic import context

from hotline.schema import target_metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `hotline db upgrade` (hotline.schema), not the alembic command")
context.configure(
    connection=connection,
    target_metadata=target_metadata(),
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
