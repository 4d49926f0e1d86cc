"""The operator desktop's REST routes: who am I, presence, the current call, its transcript, call control, address
confirmation, and the admins' operator overview.

Handlers are `async def` because call control is asynchronous (in this process or another); every database read or write
goes through the thread pool (`run_in_threadpool`), and the token check is a sync dependency (thread pool too).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from starlette.concurrency import run_in_threadpool

from agent_desktop_api.auth import OVERSEERS, User, require_role
from agent_desktop_api.call_info import CallInfo
from agent_desktop_api.desktop_models import (
    CALL_ERRORS,
    ERRORS,
    ActionDone,
    AddressConfirmation,
    AddressConfirmRequest,
    CurrentCall,
    DesktopSocket,
    InterpreterRequest,
    Me,
    OperatorsOverview,
    OperatorStatus,
    PresenceRequest,
    PresenceState,
    PresenceValue,
    Transcript,
    TranscriptSegment,
    TransferRequest,
)
from agent_desktop_api.desktop_runtime import CallControl, ControlUnavailable, Desktop
from events.contract import AddressConfirmed
from voice.gateway import CallNotFound


def get_desktop(request: Request) -> Desktop:
    desktop = getattr(request.app.state, "desktop", None)
    if not isinstance(desktop, Desktop):
        raise RuntimeError("app.state.desktop is not set: call agent_desktop_api.desktop.mount_desktop")
    return desktop


Operator = Annotated[User, Depends(require_role("operator"))]
Admin = Annotated[User, Depends(require_role("admin"))]
Overseer = Annotated[User, Depends(require_role("supervisor", "admin"))]
Anyone = Annotated[User, Depends(require_role("operator", "supervisor", "admin"))]
Desk = Annotated[Desktop, Depends(get_desktop)]
CallId = Annotated[str, Path(min_length=1, max_length=128)]

router = APIRouter(prefix="/api", tags=["desktop"])


def _problem(code: int, detail: str) -> HTTPException:
    return HTTPException(code, detail)


# ---- me and presence ----


@router.get("/me", responses=ERRORS)
async def me(user: Anyone, desktop: Desk) -> Me:
    op = await desktop.operator(user.name) if user.role == "operator" else None
    await desktop.log.caught_up()
    return Me(
        user=user.name,
        role=user.role,
        operator_id=user.name if user.role == "operator" else None,
        presence=cast(PresenceValue, op["presence"]) if op is not None else None,
        skills=sorted(op["skills"]) if op is not None else [],
        phone_registered=op["registered"] if op is not None else None,
        last_seq=desktop.log.last_seq(user.name) if user.role == "operator" else 0,
        epoch=desktop.log.epoch,
    )


@router.put("/me/presence", responses={**ERRORS, 409: CALL_ERRORS[409], 503: CALL_ERRORS[503]})
async def set_presence(body: PresenceRequest, user: Operator, desktop: Desk) -> PresenceState:
    control = desktop.control()
    try:
        presence = await control.set_presence(user.name, body.presence)
    except RuntimeError:
        raise _problem(status.HTTP_503_SERVICE_UNAVAILABLE, "no operator pool behind this API process") from None
    except KeyError:
        raise _problem(
            status.HTTP_409_CONFLICT, f"{user.name} is not a configured operator (telephony.operators)"
        ) from None
    except ControlUnavailable as exc:
        raise _problem(status.HTTP_503_SERVICE_UNAVAILABLE, f"the call side does not answer: {exc}") from None
    return PresenceState(presence=cast(PresenceValue, presence))


# ---- the current call ----


@router.get(
    "/calls/current",
    response_model=CurrentCall,
    responses={**ERRORS, 204: {"description": "No call for this operator now."}},
)
async def current_call(user: Operator, desktop: Desk) -> CurrentCall | Response:
    live = await desktop.live_calls()
    info = desktop.log.current_call(user.name)
    if info is None or info.call_id not in live:
        # The log may have started after the call was answered: the gateway knows who talks to whom.
        match = next((c for c in live.values() if c.get("operator_id") == user.name), None)
        if match is None:
            return Response(status_code=status.HTTP_204_NO_CONTENT)
        call_id = str(match["call_id"])
        info = await run_in_threadpool(desktop.log.call, call_id) or CallInfo(call_id, operator_id=user.name)
    call = live[info.call_id]
    seconds = call.get("seconds")
    started = datetime.now(UTC) - timedelta(seconds=float(seconds) if isinstance(seconds, int | float) else 0.0)
    talking = info.answered_at is not None or call.get("operator_id") == user.name
    return CurrentCall(
        call_id=info.call_id,
        caller_number=info.caller_number or _opt_str(call.get("caller_number")),
        language=info.language or _opt_str(call.get("language")),
        ivr_path=info.ivr_path,
        queue=info.queue,
        interpreter=bool(call.get("interpreter")),
        interpreter_language=info.interpreter_language,
        started_at=started,
        offered_at=info.offered_at,
        answered_at=info.answered_at,
        state="talking" if talking else "offered",
        operator_id=info.operator_id or user.name,
    )


def _opt_str(value: object) -> str | None:
    return str(value) if value is not None else None


# ---- transcript ----


async def require_readable(desktop: Desktop, call_id: str, user: User) -> None:
    """404 unless the call is known; 403 unless the user oversees every call or is an operator the call went to."""
    live = (await desktop.live_calls()).get(call_id)
    if live is None and not await run_in_threadpool(desktop.log.known, call_id):
        raise _problem(status.HTTP_404_NOT_FOUND, "no such call")
    if user.role in OVERSEERS:
        return
    if live is not None and live.get("operator_id") == user.name:
        return
    if not await run_in_threadpool(desktop.log.handled_by, call_id, user.name):
        raise _problem(status.HTTP_403_FORBIDDEN, "not your call")


@router.get("/calls/{call_id}/transcript", responses={**ERRORS, 404: CALL_ERRORS[404]})
async def transcript(call_id: CallId, user: Anyone, desktop: Desk) -> Transcript:
    await require_readable(desktop, call_id, user)
    finals = await run_in_threadpool(desktop.log.finals, call_id)
    return Transcript(call_id=call_id, segments=[TranscriptSegment.model_validate(m) for m in finals])


# ---- call control ----


async def controllable(desktop: Desktop, call_id: str, user: User) -> CallControl:
    """The call control, if the call is in progress and the user is its operator (or a supervisor or an admin)."""
    control = desktop.control()
    live = (await desktop.live_calls()).get(call_id)
    if live is None:
        if await run_in_threadpool(desktop.log.known, call_id):
            raise _problem(status.HTTP_409_CONFLICT, "the call has ended")
        raise _problem(status.HTTP_404_NOT_FOUND, "no such call")
    if user.role not in OVERSEERS:
        info = desktop.log.open_call(call_id)
        owner = live.get("operator_id") or (info.operator_id if info is not None else None)
        if owner != user.name:
            raise _problem(status.HTTP_403_FORBIDDEN, "not your call")
    return control


async def act(call_id: str, action: str, run: Callable[[], Awaitable[bool | None]]) -> ActionDone:
    try:
        done = await run()
    except CallNotFound:
        raise _problem(status.HTTP_409_CONFLICT, "the call has ended") from None
    except ValueError as exc:  # routing refused the target (not an operator, queue or directory entry)
        # The shape of FastAPI's own 422, so that clients read one kind of validation error.
        field = "target" if action == "transfer" else "language"
        detail = [{"loc": ["body", field], "msg": str(exc), "type": "value_error"}]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from None
    except LookupError as exc:  # routing: the call is not talking to an operator (still in the IVR or queued)
        raise _problem(status.HTTP_409_CONFLICT, str(exc) or "the call is not with an operator") from None
    except RuntimeError as exc:  # routing is not configured on this gateway
        raise _problem(status.HTTP_409_CONFLICT, str(exc)) from None
    except ControlUnavailable as exc:
        raise _problem(status.HTTP_503_SERVICE_UNAVAILABLE, f"the call side does not answer: {exc}") from None
    if done is False:
        raise _problem(status.HTTP_409_CONFLICT, f"{action} refused or failed")
    return ActionDone(call_id=call_id, action=cast(Any, action))


@router.post("/calls/{call_id}/hangup", responses=CALL_ERRORS)
async def hangup(call_id: CallId, user: Anyone, desktop: Desk) -> ActionDone:
    gateway = await controllable(desktop, call_id, user)
    reason = "operator_hangup" if user.role == "operator" else "supervisor_hangup"
    return await act(call_id, "hangup", lambda: gateway.hangup_call(call_id, reason))


@router.post("/calls/{call_id}/transfer", responses=CALL_ERRORS)
async def transfer(call_id: CallId, body: TransferRequest, user: Anyone, desktop: Desk) -> ActionDone:
    gateway = await controllable(desktop, call_id, user)
    return await act(call_id, "transfer", lambda: gateway.transfer_call(call_id, body.target))


@router.post("/calls/{call_id}/interpreter", responses=CALL_ERRORS)
async def add_interpreter(call_id: CallId, body: InterpreterRequest, user: Anyone, desktop: Desk) -> ActionDone:
    gateway = await controllable(desktop, call_id, user)
    return await act(call_id, "add_interpreter", lambda: gateway.add_interpreter(call_id, body.language))


@router.delete("/calls/{call_id}/interpreter", responses=CALL_ERRORS)
async def drop_interpreter(call_id: CallId, user: Anyone, desktop: Desk) -> ActionDone:
    gateway = await controllable(desktop, call_id, user)
    return await act(call_id, "drop_interpreter", lambda: gateway.drop_interpreter(call_id))


# ---- address confirmation ----


@router.post("/calls/{call_id}/address", responses=CALL_ERRORS)
async def confirm_address(
    call_id: CallId, body: AddressConfirmRequest, user: Anyone, desktop: Desk
) -> AddressConfirmation:
    """Store the place the operator confirmed or corrected, and tell the call's desktop(s) (`address.confirmed`).
    Allowed after the call has ended too (wrap-up)."""
    await require_readable(desktop, call_id, user)
    live = (await desktop.live_calls()).get(call_id)
    info = await run_in_threadpool(desktop.log.call, call_id)
    owner = _opt_str(live.get("operator_id")) if live is not None else None
    owner = owner or (info.operator_id if info is not None else None)
    if owner is None and user.role == "operator":
        owner = user.name
    stored = await run_in_threadpool(desktop.confirmations.add, call_id, owner, user.name, body.model_dump())
    confirmed = AddressConfirmed(
        **body.model_dump(), call_id=call_id, confirmation_id=stored["id"], confirmed_by=user.name, operator_id=owner
    )
    desktop.bus.send(confirmed)
    return AddressConfirmation.model_validate(stored)


# ---- admin ----


@router.get("/admin/operators", responses=ERRORS)
async def operators(user: Admin, desktop: Desk) -> OperatorsOverview:
    snapshot = await desktop.operators() or []
    return OperatorsOverview(
        operators=[
            OperatorStatus(
                id=op["id"],
                skills=op["skills"],
                presence=cast(PresenceValue, op["presence"]),
                phone_registered=op["registered"],
                desktops=desktop.hub.count(op["id"]),
            )
            for op in snapshot
        ],
        desktops=[
            DesktopSocket(operator_id=c.operator_id, connected_at=c.connected_at, last_seq=c.last_sent)
            for c in desktop.hub.connections()
        ],
    )
