"""Admins and the dispatch system: the deliveries of submitted tickets (what is pending, delivered, dead and why),
retrying a dead letter, and the submitted tickets as JSON or CSV for a system that pulls instead."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, RootModel
from starlette.concurrency import run_in_threadpool

from agent_desktop_api.desktop_models import ERRORS
from agent_desktop_api.desktop_routes import Admin, Desk
from agent_desktop_api.ticket_routes import SubmittedTicket
from events.ticket import TicketFields

router = APIRouter(prefix="/api/admin", tags=["dispatch"])

CSV_FIELDS = ("call_id", "submitted_at", "caller_number", "operator_id", "submitted_by", *TicketFields.model_fields)


class Delivery(BaseModel):
    call_id: str
    idempotency_key: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class Deliveries(BaseModel):
    webhook: bool
    deliveries: list[Delivery]


@router.get("/dispatch", responses=ERRORS)
async def deliveries(
    user: Admin,
    desktop: Desk,
    state: Annotated[Literal["pending", "delivered", "dead"] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Deliveries:
    """Each submitted ticket's delivery to the dispatch webhook, newest first; `status=dead`: the dead letters."""
    rows = await run_in_threadpool(desktop.deliveries.list, state, limit)
    return Deliveries(webhook=desktop.sender is not None, deliveries=[Delivery.model_validate(r) for r in rows])


@router.post("/dispatch/{call_id}/retry", responses={**ERRORS, 404: {"description": "No dead letter of that call."}})
async def retry(call_id: Annotated[str, Path(min_length=1, max_length=128)], user: Admin, desktop: Desk) -> Delivery:
    """Put a dead letter back in the queue (after the receiver was fixed); it is sent at once."""
    if not await run_in_threadpool(desktop.deliveries.retry, call_id, datetime.now(UTC)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no dead letter of that call")
    if desktop.sender is not None:
        desktop.sender.wake()
    return Delivery.model_validate(await run_in_threadpool(desktop.deliveries.get, call_id))


class ExportedTickets(RootModel[list[SubmittedTicket]]):
    """The JSON form of the export (the CSV form has one row each, the ticket's fields as columns)."""


@router.get(
    "/tickets/export",
    response_model=None,
    responses={**ERRORS, 200: {"model": ExportedTickets, "content": {"text/csv": {}}}},
)
async def export(
    user: Admin,
    desktop: Desk,
    since: datetime | None = None,
    until: datetime | None = None,
    form: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Response:
    """Submitted tickets in [since, until), newest first, as JSON or CSV (UTF-8 with a BOM, for spreadsheets)."""
    rows = await run_in_threadpool(lambda: desktop.tickets.submitted(since=since, until=until, limit=limit))
    tickets = [SubmittedTicket.model_validate(row) for row in rows]
    if form == "json":
        body = "[" + ",".join(t.model_dump_json() for t in tickets) + "]"
        return Response(body, media_type="application/json")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for ticket in tickets:
        flat = {**ticket.fields.model_dump(mode="json"), **ticket.model_dump(mode="json", exclude={"fields"})}
        writer.writerow({key: _cell(value) for key, value in flat.items()})
    headers = {"Content-Disposition": 'attachment; filename="tickets.csv"'}
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


def _cell(value: object) -> object:
    """A cell a spreadsheet shows as text: lists joined; a leading = + - @ quoted (no formula from a caller's words)."""
    if isinstance(value, list):
        value = "; ".join(str(item) for item in value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
