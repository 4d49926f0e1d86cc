"""Addresses the operator confirmed or corrected on the map: the place the ticket is dispatched to.

Kept without a retention limit (unlike the desktop event log): they are the outcome of the operator's work.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from config.database import create_tables, metadata

address_confirmations = sa.Table(
    "address_confirmations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(128), nullable=False, index=True),
    sa.Column("segment_id", sa.String(128), nullable=True),
    sa.Column("district", sa.String(64), nullable=False),
    sa.Column("town", sa.String(64), nullable=True),
    sa.Column("community", sa.String(64), nullable=True),
    sa.Column("lng", sa.Float, nullable=True),  # WGS-84
    sa.Column("lat", sa.Float, nullable=True),
    sa.Column("source", sa.String(16), nullable=False),  # confirmed | corrected
    sa.Column("operator_id", sa.String(80), nullable=True),
    sa.Column("confirmed_by", sa.String(80), nullable=False),
    sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
)


class ConfirmationStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(engine, address_confirmations)

    def add(self, call_id: str, operator_id: str | None, confirmed_by: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Store one confirmation (blocking: call from a thread); returns the stored row."""
        row = {
            **fields,
            "call_id": call_id,
            "operator_id": operator_id,
            "confirmed_by": confirmed_by,
            "confirmed_at": datetime.now(UTC),
        }
        with self.engine.begin() as conn:
            key = conn.execute(sa.insert(address_confirmations).values(**row)).inserted_primary_key
        assert key is not None
        return {"id": int(key[0]), **row}

    def for_call(self, call_id: str) -> list[dict[str, Any]]:
        query = (
            sa.select(address_confirmations)
            .where(address_confirmations.c.call_id == call_id)
            .order_by(address_confirmations.c.id)
        )
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]
