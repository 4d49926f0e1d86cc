"""The call history at the desk: search past calls, open one with its transcript and ticket, and the earlier calls
of the number on the line (a repeat caller).

Who may: an operator searches and opens the calls they took; supervisors and admins every call. For the call an
operator has now, they see that number's earlier calls whoever took them: that is what a repeat-caller flag is for.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from agent_desktop_api.auth import OVERSEERS, User
from agent_desktop_api.desktop_models import ERRORS
from agent_desktop_api.desktop_routes import Anyone, CallId, Desk, Overseer, require_readable
from agent_desktop_api.desktop_runtime import Desktop
from agent_desktop_api.history import HistoryQuery

router = APIRouter(prefix="/api", tags=["history"])
REPEAT_WINDOW_DAYS = 30


class Place(BaseModel):
    district: str | None
    town: str | None
    community: str | None
    source: Literal["confirmed", "corrected", "heard"] | None = Field(
        description="confirmed/corrected by the operator, or heard: the map's best candidate."
    )


class FiledTicket(BaseModel):
    status: str
    category_code: str | None
    category: str | None
    district: str | None
    summary: str | None
    response: str | None
    submitted_at: datetime | None


class CallSummary(BaseModel):
    call_id: str
    caller_number: str | None
    language: str | None
    operator_id: str | None
    queue: str | None
    ivr_path: list[str]
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    reason: str | None = Field(description="Who or what ended the call (call.ended's reason).")
    place: Place | None
    lines: int = Field(description="Final transcript lines.")
    recording_seconds: float | None = Field(description="The recording's length; null: the call was not recorded.")
    first_line: str | None = Field(description="The caller's first final line.")
    ticket: FiledTicket | None = Field(description="The submitted ticket, if one was filed.")


class Line(BaseModel):
    speaker: str
    text: str
    start_ms: int


class Monitoring(BaseModel):
    supervisor: str
    mode: Literal["listen", "whisper", "barge", "left"]
    at: datetime


class CallRecord(CallSummary):
    transcript: list[Line]
    monitoring: list[Monitoring] = Field(
        description="Supervisors who came into the call (listen, whisper, barge), changed mode or left, in order."
    )


class Listener(BaseModel):
    user: str
    role: str
    at: datetime


class RecordingAccess(BaseModel):
    call_id: str
    listeners: list[Listener]


class HistoryPage(BaseModel):
    calls: list[CallSummary]
    next_before: datetime | None = Field(description="Pass as `before` for the next (older) page; null: no more.")


class CallerHistory(BaseModel):
    caller_number: str | None
    earlier_calls: int = Field(description=f"Calls from this number in the last {REPEAT_WINDOW_DAYS} days.")
    calls: list[CallSummary]


Number = Annotated[str | None, Query(max_length=32, pattern=r"^[0-9+*#]{3,32}$", description="All or part of it.")]
Text = Annotated[str | None, Query(min_length=1, max_length=100, description="Words in the transcript or ticket.")]
Category = Annotated[str | None, Query(max_length=16, pattern=r"^[0-9]{2}(\.[0-9]{2}){0,2}$")]
District = Annotated[str | None, Query(max_length=16, pattern=r"^[\u4e00-\u9fff]{2,8}$")]


@router.get("/history", responses=ERRORS)
async def search_history(
    user: Anyone,
    desktop: Desk,
    number: Number = None,
    q: Text = None,
    category: Category = None,
    district: District = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> HistoryPage:
    """Past calls, newest first: by (part of) the caller's number, words said or written in the ticket, the
    ticket's category (a code or its prefix: `02`, `02.03`), the district, and when the call started."""
    query = HistoryQuery(
        operator_id=None if user.role in OVERSEERS else user.name,
        number=number,
        text=q,
        category=category,
        district=district,
        since=since,
        until=until,
        before=before,
        limit=limit + 1,
    )
    rows = await run_in_threadpool(desktop.history.search, query)
    more = len(rows) > limit
    calls = [CallSummary.model_validate(row) for row in rows[:limit]]
    return HistoryPage(calls=calls, next_before=calls[-1].started_at if more else None)


@router.get("/history/{call_id}", responses={**ERRORS, 404: {"description": "No record of that call."}})
async def call_record(
    call_id: Annotated[str, Path(min_length=1, max_length=128)], user: Anyone, desktop: Desk
) -> CallRecord:
    """One call as it was kept: the record, the final transcript and the submitted ticket."""
    return CallRecord.model_validate(await _readable_record(desktop, call_id, user))


async def _readable_record(desktop: Desktop, call_id: str, user: User) -> dict[str, Any]:
    record = await run_in_threadpool(desktop.history.record, call_id)
    if record is None or (user.role not in OVERSEERS and record["operator_id"] != user.name):
        # the same answer for "none" and "not yours": an operator learns nothing of other operators' calls
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no record of that call")
    return record


@router.get(
    "/history/{call_id}/recording",
    response_class=FileResponse,
    responses={**ERRORS, 200: {"content": {"audio/wav": {}}}, 404: {"description": "No recording you may hear."}},
)
async def recording(
    call_id: Annotated[str, Path(min_length=1, max_length=128)], user: Anyone, desktop: Desk
) -> FileResponse:
    """The call's recording (WAV, every party): for the call's operator, supervisors and admins. Each opening is
    kept."""
    record = await _readable_record(desktop, call_id, user)
    folder = desktop.recordings
    if not record.get("recording") or folder is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this call has no recording")
    path = (folder / str(record["recording"])).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():  # a name from the bus never leaves the folder
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the recording is not on this server")
    await run_in_threadpool(desktop.history.listened, call_id, user.name, user.role)
    return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "no-store"})


@router.get("/history/{call_id}/recording/access", responses={**ERRORS, 404: {"description": "No record."}})
async def recording_access(
    call_id: Annotated[str, Path(min_length=1, max_length=128)], user: Overseer, desktop: Desk
) -> RecordingAccess:
    """Who opened the call's recording, and when."""
    await _readable_record(desktop, call_id, user)
    rows = await run_in_threadpool(desktop.history.listeners, call_id)
    return RecordingAccess(call_id=call_id, listeners=[Listener.model_validate(row) for row in rows])


@router.get("/calls/{call_id}/caller-history", responses={**ERRORS, 404: {"description": "No such call."}})
async def caller_history(call_id: CallId, user: Anyone, desktop: Desk) -> CallerHistory:
    """The earlier calls of this call's number (whoever took them), newest first: the repeat-caller flag."""
    await require_readable(desktop, call_id, user)
    live = (await desktop.live_calls()).get(call_id)
    info = await run_in_threadpool(desktop.log.call, call_id)
    number = (live or {}).get("caller_number") or (info.caller_number if info is not None else None)
    if not number:
        return CallerHistory(caller_number=None, earlier_calls=0, calls=[])
    since = datetime.now(UTC) - timedelta(days=REPEAT_WINDOW_DAYS)
    rows: list[dict[str, Any]] = await run_in_threadpool(
        desktop.history.search, HistoryQuery(number=str(number), since=since, limit=21)
    )
    earlier = [row for row in rows if row["call_id"] != call_id and row["caller_number"] == number]
    return CallerHistory(
        caller_number=str(number),
        earlier_calls=len(earlier),
        calls=[CallSummary.model_validate(row) for row in earlier[:20]],
    )
