"""Tickets (工单): the operator's edits over the call's draft, every change with who made it, and the submitted
ticket. Kept without a retention limit, like address confirmations: they are the outcome of the operator's work.

The draft itself is not stored here: it is the call's last `ticket.draft` desk event (the event log keeps it).
An edited field belongs to the operator from then on: later drafts never overwrite it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agent_desktop_api.dispatch import enqueue, ticket_deliveries
from config.database import as_utc, as_utc_or_none, create_tables, metadata
from events.ticket import TicketDraft, TicketFields

REQUIRED = ("category_code", "district", "summary")  # what a dispatcher cannot route a ticket without

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("call_id", sa.String(128), primary_key=True),
    sa.Column("operator_id", sa.String(80), nullable=True, index=True),
    sa.Column("caller_number", sa.String(64), nullable=True, index=True),
    sa.Column("edits", sa.Text, nullable=False),  # JSON: the fields the operator set
    sa.Column("status", sa.String(16), nullable=False),  # open | submitted
    sa.Column("ticket", sa.Text, nullable=True),  # JSON: the submitted fields
    sa.Column("submitted_by", sa.String(80), nullable=True),
    sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True, index=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # of the submitted ticket, for the history's search
    sa.Column("category_code", sa.String(16), nullable=True, index=True),
    sa.Column("district", sa.String(32), nullable=True, index=True),
)

ticket_changes = sa.Table(
    "ticket_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(128), nullable=False, index=True),
    sa.Column("field", sa.String(32), nullable=False),
    sa.Column("old", sa.Text, nullable=True),  # JSON
    sa.Column("new", sa.Text, nullable=True),  # JSON
    sa.Column("changed_by", sa.String(80), nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
)


class TicketSubmitted(Exception):
    """The ticket was submitted already: it no longer changes."""


class TicketIncomplete(ValueError):
    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"a ticket needs {', '.join(missing)}")
        self.missing = missing


@dataclass(frozen=True)
class Change:
    field: str
    old: Any
    new: Any
    changed_by: str
    changed_at: datetime


@dataclass(frozen=True)
class TicketState:
    call_id: str
    status: str
    fields: TicketFields  # what the desk shows: the draft with the operator's edits over it
    edited: list[str]
    draft: TicketDraft | None
    submitted_by: str | None = None
    submitted_at: datetime | None = None
    changes: list[Change] = field(default_factory=list)


def merge(draft: TicketDraft | None, edits: dict[str, Any]) -> TicketFields:
    base = TicketFields.model_validate(draft.model_dump(include=set(TicketFields.model_fields))) if draft else None
    values = {**(base.model_dump() if base is not None else {}), **edits}
    return TicketFields.model_validate(values)


class TicketStore:
    """Blocking calls: run them from a thread. `dispatch`: a submitted ticket's delivery to the dispatch system is
    written with it (agent_desktop_api.dispatch)."""

    def __init__(self, engine: Engine, *, dispatch: bool = False) -> None:
        self.engine = engine
        self.dispatch = dispatch
        create_tables(engine, tickets, ticket_changes)
        if dispatch:
            create_tables(engine, ticket_deliveries)

    def state(self, call_id: str, draft: TicketDraft | None) -> TicketState:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(tickets).where(tickets.c.call_id == call_id)).mappings().first()
            changes = [
                Change(c["field"], _load(c["old"]), _load(c["new"]), c["changed_by"], as_utc(c["changed_at"]))
                for c in conn.execute(
                    sa.select(ticket_changes).where(ticket_changes.c.call_id == call_id).order_by(ticket_changes.c.id)
                ).mappings()
            ]
        if row is None:
            return TicketState(call_id, "open", merge(draft, {}), [], draft)
        edits: dict[str, Any] = json.loads(row["edits"])
        if row["status"] == "submitted":
            fields = TicketFields.model_validate_json(row["ticket"])
        else:
            fields = merge(draft, edits)
        submitted_at = as_utc_or_none(row["submitted_at"])
        return TicketState(
            call_id, row["status"], fields, sorted(edits), draft, row["submitted_by"], submitted_at, changes
        )

    def edit(
        self,
        call_id: str,
        changes: dict[str, Any],
        by: str,
        draft: TicketDraft | None,
        *,
        operator_id: str | None,
        caller_number: str | None,
        complete: Callable[[dict[str, Any], TicketFields], dict[str, Any]] | None = None,
    ) -> TicketState:
        """Set the operator's values of `changes` (validated as TicketFields); each real change is logged.
        `complete` may add fields that follow from the changes and the ticket as shown (a category's response)."""
        TicketFields.model_validate(changes)  # bad values fail before anything is written
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            row, edits = _open(conn, call_id)
            shown = merge(draft, edits)
            if complete is not None:
                changes = complete(changes, shown)
            before = shown.model_dump(mode="json")
            for name, value in changes.items():
                if before.get(name) != value:
                    conn.execute(
                        sa.insert(ticket_changes).values(
                            call_id=call_id,
                            field=name,
                            old=json.dumps(before.get(name), ensure_ascii=False),
                            new=json.dumps(value, ensure_ascii=False),
                            changed_by=by,
                            changed_at=now,
                        )
                    )
                edits[name] = value
            values = {"edits": json.dumps(edits, ensure_ascii=False), "status": "open", "updated_at": now}
            _write(conn, call_id, row is None, values, operator_id, caller_number)
        return self.state(call_id, draft)

    def submit(
        self, call_id: str, by: str, draft: TicketDraft | None, *, operator_id: str | None, caller_number: str | None
    ) -> TicketState:
        """File the ticket as the desk shows it now; TicketIncomplete names what is missing."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            row, edits = _open(conn, call_id)
            fields = merge(draft, edits)
            missing = [name for name in REQUIRED if not getattr(fields, name)]
            if missing:
                raise TicketIncomplete(missing)
            values = {
                "edits": json.dumps(edits, ensure_ascii=False),
                "status": "submitted",
                "ticket": fields.model_dump_json(),
                "submitted_by": by,
                "submitted_at": now,
                "updated_at": now,
                "category_code": fields.category_code,
                "district": fields.district,
            }
            _write(conn, call_id, row is None, values, operator_id, caller_number)
            if self.dispatch:  # in this transaction: a ticket filed is a ticket that will be delivered
                filed = {
                    "call_id": call_id,
                    "caller_number": caller_number,
                    "operator_id": operator_id,
                    "submitted_by": by,
                    "submitted_at": now.isoformat(),
                    "ticket": fields.model_dump(mode="json"),
                }
                enqueue(conn, call_id, filed, now)
        return self.state(call_id, draft)

    def submitted(
        self,
        *,
        caller_number: str | None = None,
        operator_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Submitted tickets, newest first, optionally of one caller number and/or one operator's calls, and
        submitted in [since, until)."""
        query = sa.select(tickets).where(tickets.c.status == "submitted")
        if caller_number is not None:
            query = query.where(tickets.c.caller_number == caller_number)
        if operator_id is not None:
            query = query.where(tickets.c.operator_id == operator_id)
        if since is not None:
            query = query.where(tickets.c.submitted_at >= since)
        if until is not None:
            query = query.where(tickets.c.submitted_at < until)
        query = query.order_by(tickets.c.submitted_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [
                {
                    "call_id": row["call_id"],
                    "caller_number": row["caller_number"],
                    "operator_id": row["operator_id"],
                    "submitted_by": row["submitted_by"],
                    "submitted_at": as_utc(row["submitted_at"]),
                    "fields": json.loads(row["ticket"]),
                }
                for row in conn.execute(query).mappings()
            ]


def _open(conn: sa.Connection, call_id: str) -> tuple[sa.RowMapping | None, dict[str, Any]]:
    """The ticket's row, locked for this transaction (PostgreSQL; SQLite has one writer anyway), and the
    operator's edits; TicketSubmitted once it is filed."""
    query = sa.select(tickets).where(tickets.c.call_id == call_id).with_for_update()
    row = conn.execute(query).mappings().first()
    if row is not None and row["status"] == "submitted":
        raise TicketSubmitted(call_id)
    return row, (json.loads(row["edits"]) if row is not None else {})


def _write(
    conn: sa.Connection,
    call_id: str,
    new: bool,
    values: dict[str, Any],
    operator_id: str | None,
    caller_number: str | None,
) -> None:
    if new:
        conn.execute(
            sa.insert(tickets).values(call_id=call_id, operator_id=operator_id, caller_number=caller_number, **values)
        )
    else:
        conn.execute(sa.update(tickets).where(tickets.c.call_id == call_id).values(**values))


def _load(text: str | None) -> Any:
    return json.loads(text) if text is not None else None
