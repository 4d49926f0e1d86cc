"""Callers promised a call back (agent_desktop_api.callbacks): the list, taking one, and how it went.

Operators take and finish callbacks; supervisors and admins see the list too (the wallboard's count).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from agent_desktop_api.callbacks import CallbackNotFound, CallbackTaken
from agent_desktop_api.desktop_models import ERRORS, Problem
from agent_desktop_api.desktop_routes import Anyone, Desk, Operator

router = APIRouter(prefix="/api", tags=["callbacks"])
CallbackId = Annotated[int, Path(ge=1, le=2**31 - 1)]
CALLBACK_ERRORS: dict[int | str, dict[str, object]] = {
    **ERRORS,
    404: {"model": Problem, "description": "No such callback request."},
    409: {"model": Problem, "description": "Another operator is calling them back, or it is done."},
}


class Callback(BaseModel):
    id: int
    call_id: str
    caller_number: str | None
    language: str | None
    queue: str
    waited_s: float = Field(description="How long the caller had waited when the callback was promised.")
    requested_at: datetime
    claimed_by: str | None = Field(description="The operator calling them back now; null: free to take.")
    attempts: int = Field(description="Calls back so far that reached nobody.")
    outcome: Literal["reached", "no_answer", "wrong_number"] | None = Field(description="The last attempt's.")
    done_at: datetime | None


class CallbackList(BaseModel):
    callbacks: list[Callback] = Field(description="Callers not called back yet, the longest waiting first.")


class Finished(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["reached", "no_answer", "wrong_number"] = Field(
        description="no_answer keeps the caller on the list for another try."
    )


@router.get("/callbacks", responses=ERRORS)
async def list_callbacks(user: Anyone, desktop: Desk) -> CallbackList:
    rows = await run_in_threadpool(desktop.callbacks.pending)
    return CallbackList(callbacks=[Callback.model_validate(row) for row in rows])


@router.post("/callbacks/{callback_id}/claim", responses=CALLBACK_ERRORS)
async def claim_callback(callback_id: CallbackId, user: Operator, desktop: Desk) -> Callback:
    """The operator calls this caller back now (nobody else is offered it meanwhile)."""
    try:
        row = await run_in_threadpool(desktop.callbacks.claim, callback_id, user.name)
    except CallbackNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such callback request") from None
    except CallbackTaken as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return Callback.model_validate(row)


@router.post("/callbacks/{callback_id}/done", responses=CALLBACK_ERRORS)
async def finish_callback(callback_id: CallbackId, body: Finished, user: Operator, desktop: Desk) -> Callback:
    try:
        row = await run_in_threadpool(desktop.callbacks.finish, callback_id, user.name, body.outcome)
    except CallbackNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such callback request") from None
    except CallbackTaken as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return Callback.model_validate(row)
