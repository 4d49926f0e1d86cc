"""Request and response bodies of the desktop routes (they make the OpenAPI description)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_desktop_api.auth import Role

PresenceValue = Literal["available", "ringing", "on_call", "wrap_up", "away"]
SettablePresence = Literal["available", "away", "wrap_up"]
# An operator id, `queue:<skill>` or `external:<directory name>`: no '/', '@' or other dial-string syntax.
TRANSFER_TARGET = r"^((queue|external):)?[A-Za-z0-9_.-]{1,40}$"


class Me(BaseModel):
    user: str
    role: Role
    operator_id: str | None = Field(description="The SIP id of the user's phone (operators only).")
    presence: PresenceValue | None = Field(description="None: not a configured operator (or an admin).")
    skills: list[str]
    phone_registered: bool | None = Field(
        description="Whether the operator's SIP phone can take calls now (None: not known yet, or not an operator)."
    )
    last_seq: int = Field(
        description="The newest seq of this operator's stream now (0 for admins): a fresh page that loads the "
        "current call over REST can connect with after=last_seq instead of replaying the whole retained stream."
    )
    epoch: str = Field(
        description="Names the database the stream's seqs come from; pass it back as `epoch=` on the WebSocket."
    )


class PresenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    presence: SettablePresence


class PresenceState(BaseModel):
    presence: PresenceValue = Field(description="What the pool holds now: a call in progress keeps on_call.")


class CurrentCall(BaseModel):
    call_id: str
    caller_number: str | None
    language: str | None
    ivr_path: list[str]
    queue: str | None
    interpreter: bool = Field(description="An interpreter is in the call now.")
    interpreter_language: str | None
    started_at: datetime = Field(description="When the call reached the gateway.")
    offered_at: datetime | None
    answered_at: datetime | None
    state: Literal["offered", "talking"]
    operator_id: str | None


class TranscriptSegment(BaseModel):
    """A `transcript.final` message as the WebSocket sent it."""

    model_config = ConfigDict(extra="allow")

    type: str
    call_id: str
    seq: int
    ts: datetime
    segment_id: str | None = None
    speaker: str | None = None
    text: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    confidence: float | None = None


class Transcript(BaseModel):
    call_id: str
    segments: list[TranscriptSegment]


class TransferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str = Field(
        pattern=TRANSFER_TARGET,
        description="An operator id (op1002), `queue:<skill>` (queue:en) or `external:<name>` from the "
        "administrators' directory (`telephony.external_destinations`). Anything else: 422.",
    )


class InterpreterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: str = Field(pattern=r"^[A-Za-z_-]{2,16}$", description="Language code, e.g. ug, bo, ko.")


class ActionDone(BaseModel):
    call_id: str
    action: Literal["hangup", "transfer", "add_interpreter", "drop_interpreter", "monitor", "end_monitor"]
    ok: Literal[True] = True


class AddressConfirmRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segment_id: str | None = Field(None, max_length=128, description="The transcript segment the place came from.")
    district: str = Field(min_length=1, max_length=64)
    town: str | None = Field(None, max_length=64)
    community: str | None = Field(None, max_length=64)
    lng: float | None = Field(None, ge=-180, le=180, description="WGS-84.")
    lat: float | None = Field(None, ge=-90, le=90, description="WGS-84.")
    source: Literal["confirmed", "corrected"]


class AddressConfirmation(AddressConfirmRequest):
    id: int
    call_id: str
    operator_id: str | None = Field(description="The call's operator (whose stream got address.confirmed).")
    confirmed_by: str
    confirmed_at: datetime


class OperatorStatus(BaseModel):
    id: str
    skills: list[str]
    presence: PresenceValue
    phone_registered: bool | None = Field(
        description="The operator's SIP phone is registered (or reachable at its fixed contact); None: not known yet."
    )
    desktops: int = Field(description="WebSockets open for this operator now.")


class DesktopSocket(BaseModel):
    operator_id: str
    connected_at: datetime
    last_seq: int = Field(description="The last seq sent on this socket.")


class OperatorsOverview(BaseModel):
    operators: list[OperatorStatus]
    desktops: list[DesktopSocket]


class Problem(BaseModel):
    detail: str


ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": Problem, "description": "No, invalid or expired bearer token."},
    403: {"model": Problem, "description": "Wrong role, or not this operator's call."},
}
CALL_ERRORS: dict[int | str, dict[str, object]] = {
    **ERRORS,
    404: {"model": Problem, "description": "No such call."},
    409: {"model": Problem, "description": "The call cannot do that now (ended, no operator, refused)."},
    503: {"model": Problem, "description": "No gateway behind this API process."},
}
