"""The supervisors' wallboard: callers waiting per queue and the longest wait, each operator's state and call time,
today's calls (answered, abandoned, service level), and the live calls an alert word flagged.

Queues and operators come from the voice side (call control), today's figures from the call history, alerts from
the bus (`call.alert`, kept while the call lasts and an hour after, so a supervisor who looks away still sees it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from agent_desktop_api.desktop_models import CALL_ERRORS, ERRORS, ActionDone
from agent_desktop_api.desktop_routes import CallId, Desk, Overseer, act, controllable
from agent_desktop_api.desktop_runtime import ControlUnavailable, Desktop

ANSWER_WITHIN_S = 20.0  # the service level's threshold (answered within this many seconds of queueing)


class QueueLine(BaseModel):
    queue: str
    waiting: int
    longest_wait_s: float


class OperatorLine(BaseModel):
    id: str
    presence: str
    phone_registered: bool | None
    call_id: str | None
    caller_number: str | None
    call_s: float | None = Field(description="How long the call the operator is on has lasted.")
    monitors: dict[str, str] = Field(
        default_factory=dict, description="Supervisors in the operator's call now: id -> listen | whisper | barge."
    )


class Today(BaseModel):
    since: datetime = Field(description="Midnight, in the hotline's time zone.")
    calls: int
    queued: int
    answered: int
    abandoned: int = Field(description="Callers who hung up while waiting or ringing.")
    service_level: float | None = Field(
        description=f"Answered within {ANSWER_WITHIN_S:g} s of queueing, over answered + abandoned (null: none yet)."
    )


class Alert(BaseModel):
    call_id: str
    caller_number: str | None
    operator_id: str | None
    words: list[str]
    text: str
    at: datetime
    ended_at: datetime | None


class Wallboard(BaseModel):
    at: datetime
    queues: list[QueueLine]
    operators: list[OperatorLine]
    today: Today
    alerts: list[Alert]


router = APIRouter(prefix="/api/supervisor", tags=["supervision"])


def _midnight(zone: str) -> datetime:
    local = datetime.now(ZoneInfo(zone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


async def wallboard(desktop: Desktop) -> Wallboard:
    control = desktop.control()
    calls = await control.calls()
    queues = await control.queues()
    operators = await control.operators() or []
    by_operator = {str(call["operator_id"]): call for call in calls if call.get("operator_id")}
    since = _midnight(desktop.settings.timezone)
    day = await run_in_threadpool(desktop.history.day, since, ANSWER_WITHIN_S)
    settled = day["answered"] + day["abandoned"]
    now = datetime.now(UTC)
    live_operator = {str(call["call_id"]): call.get("operator_id") for call in calls}
    return Wallboard(
        at=now,
        queues=[QueueLine.model_validate(queue) for queue in queues],
        operators=[
            OperatorLine(
                id=op["id"],
                presence=op["presence"],
                phone_registered=op["registered"],
                call_id=str(by_operator[op["id"]]["call_id"]) if op["id"] in by_operator else None,
                caller_number=_opt(by_operator.get(op["id"], {}).get("caller_number")),
                call_s=_float(by_operator.get(op["id"], {}).get("seconds")),
                monitors=_monitors(by_operator.get(op["id"], {}).get("monitors")),
            )
            for op in operators
        ],
        today=Today(
            since=since,
            calls=day["calls"],
            queued=day["queued"],
            answered=day["answered"],
            abandoned=day["abandoned"],
            service_level=round(day["answered_in_time"] / settled, 3) if settled else None,
        ),
        alerts=[
            Alert(**alert, operator_id=_opt(live_operator.get(alert["call_id"])))
            for alert in desktop.alerts.current(now)
        ],
    )


def _opt(value: object) -> str | None:
    return str(value) if value is not None else None


def _monitors(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


@router.get("/wallboard", responses=ERRORS)
async def get_wallboard(user: Overseer, desktop: Desk) -> Wallboard:
    """What a supervisor watches: queues, operators, today's figures, flagged calls."""
    try:
        return await wallboard(desktop)
    except ControlUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"the call side does not answer: {exc}") from None


class LiveCall(BaseModel):
    call_id: str
    caller_number: str | None
    language: str | None
    operator_id: str | None = Field(description="Null: still in the IVR or queued.")
    seconds: float | None = Field(description="How long the call has lasted.")
    monitors: dict[str, str] = Field(default_factory=dict)


class LiveCalls(BaseModel):
    calls: list[LiveCall]


@router.get("/calls", responses=ERRORS)
async def live_calls(user: Overseer, desktop: Desk) -> LiveCalls:
    """Every call in progress, on every media node (in the IVR, queued or with an operator), longest first."""
    try:
        calls = await desktop.control().calls()
    except ControlUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"the call side does not answer: {exc}") from None
    lines = [
        LiveCall(
            call_id=str(call["call_id"]),
            caller_number=_opt(call.get("caller_number")),
            language=_opt(call.get("language")),
            operator_id=_opt(call.get("operator_id")),
            seconds=_float(call.get("seconds")),
            monitors=_monitors(call.get("monitors")),
        )
        for call in calls
    ]
    return LiveCalls(calls=sorted(lines, key=lambda line: -(line.seconds or 0.0)))


class MonitorRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["listen", "whisper", "barge"] = Field(
        description="listen: hear the caller and the operator, unheard; whisper: the operator hears you, the "
        "caller does not; barge: everyone hears you."
    )


@router.post("/calls/{call_id}/monitor", responses=CALL_ERRORS)
async def monitor(call_id: CallId, body: MonitorRequest, user: Overseer, desktop: Desk) -> ActionDone:
    """Ring your phone (`telephony.supervisors`, your login's id) into the operator's call in `mode`; while
    you are in it, this changes the mode. 409 when you have no phone, it did not answer, or the call is not with an
    operator."""
    control = await controllable(desktop, call_id, user)
    return await act(call_id, "monitor", lambda: control.monitor_call(call_id, user.name, body.mode))


@router.delete("/calls/{call_id}/monitor", responses=CALL_ERRORS)
async def end_monitor(call_id: CallId, user: Overseer, desktop: Desk) -> ActionDone:
    """Leave the call (your phone is hung up). 409 when you were not in it."""
    control = await controllable(desktop, call_id, user)
    return await act(call_id, "end_monitor", lambda: control.end_monitor(call_id, user.name))
