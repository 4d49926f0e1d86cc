"""The ticket of a call at the desk: read the draft with the operator's edits, change fields, submit; and the
submitted tickets of a caller number (a repeat caller's earlier matters).

Who may: the operator the call went to and admins (as for the transcript). Every edit is stored with who made it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from agent_desktop_api.auth import OVERSEERS
from agent_desktop_api.desktop_models import ERRORS
from agent_desktop_api.desktop_routes import Anyone, CallId, Desk, require_readable
from agent_desktop_api.desktop_runtime import Desktop
from agent_desktop_api.tickets import TicketIncomplete, TicketState, TicketSubmitted
from events.ticket import CategoryChoice, CategoryGuess, TicketDraft, TicketFields, dispatch_unit

router = APIRouter(prefix="/api", tags=["tickets"])
TICKET_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"description": "No such call."},
    409: {"description": "The ticket was submitted already."},
    422: {"description": "A bad field value, or (submit) a field the ticket cannot go without."},
}


class TicketChange(BaseModel):
    field: str
    old: Any
    new: Any
    changed_by: str
    changed_at: datetime


class Ticket(BaseModel):
    call_id: str
    status: str = Field(description="open (being filled) or submitted (filed; no longer changes).")
    fields: TicketFields = Field(description="What the desk shows: the draft, with the operator's edits over it.")
    edited: list[str] = Field(description="Fields the operator set: later drafts leave them alone.")
    categories: list[CategoryGuess] = Field(description="The draft's category guesses, best first.")
    urgent_words: list[str]
    submitted_by: str | None = None
    submitted_at: datetime | None = None
    changes: list[TicketChange]


class TicketEdit(TicketFields):
    """Only the fields sent change; send null to clear one."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SubmittedTicket(BaseModel):
    call_id: str
    caller_number: str | None
    operator_id: str | None
    submitted_by: str | None
    submitted_at: datetime
    fields: TicketFields


class Categories(BaseModel):
    categories: list[CategoryChoice]


class SubmittedTickets(BaseModel):
    tickets: list[SubmittedTicket]


def _ticket(state: TicketState) -> Ticket:
    draft = state.draft
    return Ticket(
        call_id=state.call_id,
        status=state.status,
        fields=state.fields,
        edited=state.edited,
        categories=draft.categories if draft is not None else [],
        urgent_words=draft.urgent_words if draft is not None else [],
        submitted_by=state.submitted_by,
        submitted_at=state.submitted_at,
        changes=[TicketChange(**change.__dict__) for change in state.changes],
    )


async def _context(desktop: Desktop, call_id: str) -> tuple[TicketDraft | None, str | None, str | None]:
    """The call's latest draft, its operator and the caller's number."""
    message = await run_in_threadpool(desktop.log.latest, call_id, "ticket.draft")
    draft = (
        TicketDraft.model_validate({k: v for k, v in message.items() if k in TicketDraft.model_fields})
        if message
        else None
    )
    live = (await desktop.live_calls()).get(call_id)
    info = await run_in_threadpool(desktop.log.call, call_id)
    operator = (live or {}).get("operator_id") or (info.operator_id if info is not None else None)
    number = (live or {}).get("caller_number") or (info.caller_number if info is not None else None)
    return draft, (str(operator) if operator else None), (str(number) if number else None)


@router.get("/ticket/categories", responses=ERRORS)
async def categories(user: Anyone, desktop: Desk) -> Categories:
    """The problem catalogue's leaf categories, for the ticket's category field."""
    return Categories(categories=list(desktop.categories.values()))


def _category_filler(
    desktop: Desktop, changes: dict[str, Any]
) -> Callable[[dict[str, Any], TicketFields], dict[str, Any]] | None:
    """For a category picked by its code: what adds its path, response class and dispatch unit (for the ticket's
    place) unless those were sent. 422 for a code the catalogue does not have."""
    code = changes.get("category_code")
    if code is None or not desktop.categories:
        return None
    choice = desktop.categories.get(code)
    if choice is None:
        detail = [{"loc": ["body", "category_code"], "msg": f"no category {code} in the catalogue", "type": "value"}]
        raise HTTPException(422, detail)

    def fill(sent: dict[str, Any], shown: TicketFields) -> dict[str, Any]:
        district, town = sent.get("district", shown.district), sent.get("town", shown.town)
        filled = {
            "category": " / ".join(choice.path),
            "response": choice.response,
            "dispatch_unit": dispatch_unit(choice.dispatch, district, town),
        }
        return {**filled, **sent}

    return fill


@router.get("/calls/{call_id}/ticket", responses=TICKET_ERRORS)
async def get_ticket(call_id: CallId, user: Anyone, desktop: Desk) -> Ticket:
    """The call's ticket: filled from the call as it goes (`ticket.draft` events), with the operator's edits."""
    await require_readable(desktop, call_id, user)
    draft, _, _ = await _context(desktop, call_id)
    return _ticket(await run_in_threadpool(desktop.tickets.state, call_id, draft))


@router.patch("/calls/{call_id}/ticket", responses=TICKET_ERRORS)
async def edit_ticket(call_id: CallId, body: TicketEdit, user: Anyone, desktop: Desk) -> Ticket:
    """Change fields of the ticket; each change is kept with who made it."""
    await require_readable(desktop, call_id, user)
    draft, operator, number = await _context(desktop, call_id)
    changes = body.model_dump(mode="json", exclude_unset=True)
    complete = _category_filler(desktop, changes)
    try:
        state = await run_in_threadpool(
            lambda: desktop.tickets.edit(
                call_id, changes, user.name, draft, operator_id=operator, caller_number=number, complete=complete
            )
        )
    except TicketSubmitted:
        raise HTTPException(status.HTTP_409_CONFLICT, "the ticket was submitted already") from None
    return _ticket(state)


@router.post("/calls/{call_id}/ticket", responses=TICKET_ERRORS)
async def submit_ticket(call_id: CallId, user: Anyone, desktop: Desk) -> Ticket:
    """File the ticket as it stands (draft plus edits). It needs a category, a district and a summary."""
    await require_readable(desktop, call_id, user)
    draft, operator, number = await _context(desktop, call_id)
    try:
        state = await run_in_threadpool(
            lambda: desktop.tickets.submit(call_id, user.name, draft, operator_id=operator, caller_number=number)
        )
    except TicketSubmitted:
        raise HTTPException(status.HTTP_409_CONFLICT, "the ticket was submitted already") from None
    except TicketIncomplete as exc:
        detail = [{"loc": ["body", name], "msg": "required to submit", "type": "missing"} for name in exc.missing]
        raise HTTPException(422, detail) from None
    if desktop.sender is not None:  # its delivery was written with it: send it now
        desktop.sender.wake()
    return _ticket(state)


@router.get("/tickets", responses=ERRORS)
async def submitted_tickets(
    user: Anyone,
    desktop: Desk,
    caller_number: Annotated[str | None, Query(max_length=64, pattern=r"^[0-9+*#]{1,64}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> SubmittedTickets:
    """Submitted tickets, newest first: an operator sees those of the calls they took, an admin all."""
    operator = None if user.role in OVERSEERS else user.name
    rows = await run_in_threadpool(
        lambda: desktop.tickets.submitted(caller_number=caller_number, operator_id=operator, limit=limit)
    )
    return SubmittedTickets(tickets=[SubmittedTicket.model_validate(row) for row in rows])
