"""Every event a call publishes and every message a desk receives, as pydantic models.

The bus checks each published event against its model (`check_event`: an unknown type or a wrong field is an
error at the publisher, not a surprise on a desk), and `desk_message_schema()` is the JSON Schema of what the
operator's WebSocket sends (`hotline events schema`). A desk message is the event plus `seq` (per operator stream)
and `ts`; `stream.status`, `resync` and `ping` are about the stream itself and carry no `seq`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from events.address import AddressCandidates, TextSpan
from events.ticket import TicketDraft

Speaker = Literal["caller", "operator", "interpreter"]


class InvalidEvent(ValueError):
    """A publisher sent an event that is not in the contract."""


def _type_required(schema: dict[str, Any]) -> None:
    """Every message carries its `type`, default or not."""
    required = schema.setdefault("required", [])
    if isinstance(required, list) and "type" not in required:
        required.insert(0, "type")


class CallFields(TypedDict):
    """What every event of a call carries, as the call gives it to its publishers."""

    call_id: str
    caller_number: str | None
    language: str | None


class _Event(BaseModel):
    """A publisher builds one of these (its `type` is set by the class); the bus adds `ts`, the desk `seq`."""

    # `type` has a default so publishers need not repeat it; it is still always in what is sent.
    model_config = ConfigDict(extra="forbid", json_schema_extra=_type_required)

    call_id: str = Field(max_length=128)
    ts: datetime | None = Field(None, description="When it happened (ISO-8601 UTC); set by the bus.")
    seq: int | None = Field(None, ge=1, description="Position in the operator's stream (desk messages only).")
    caller_number: str | None = None
    language: str | None = Field(None, description="The caller's language code (zh, en, …).")


class _Routed(_Event):
    operator_id: str
    queue: str | None = None
    ivr_path: list[str] = Field(default_factory=list, description="The menu choices that led here.")
    flow_version: int | None = None
    interpreter_language: str | None = None


class CallOffered(_Routed):
    type: Literal["call.offered"] = "call.offered"


class CallAnswered(_Routed):
    type: Literal["call.answered"] = "call.answered"
    waited_s: float | None = Field(None, description="How long the caller waited for an operator.")


class CallEnded(_Event):
    type: Literal["call.ended"] = "call.ended"
    reason: str | None = Field(
        None,
        description="completed, caller_hangup, operator_hangup, supervisor_hangup, transferred, asterisk_lost, "
        "gateway_shutdown, error; not_answered on the desk of an operator whose phone rang out; node_lost when "
        "the media node carrying the call went silent (a cluster's desk side ends it).",
    )
    seconds: float | None = None


class CallTransferred(_Event):
    type: Literal["call.transferred"] = "call.transferred"
    target: str
    from_operator: str | None = None
    operator_id: str | None = None


class CallRecorded(_Event):
    """The conversation's recording is stored (after the call's end)."""

    type: Literal["call.recorded"] = "call.recorded"
    recording: str = Field(max_length=200, description="The file, relative to the recordings folder.")
    seconds: float = Field(ge=0)
    bytes: int = Field(ge=0)


class CallAlert(_Event):
    """The caller said words a supervisor must hear of at once (the alert assistant's list)."""

    type: Literal["call.alert"] = "call.alert"
    segment_id: str
    words: list[str] = Field(max_length=50)
    text: str = Field(max_length=500, description="The line they were said in.")


class CallMonitored(_Event):
    """A supervisor came into an operator's call, changed how (listen: unheard; whisper: only the operator hears
    them; barge: everyone does), or left it."""

    type: Literal["call.monitored"] = "call.monitored"
    operator_id: str | None = None
    supervisor_id: str = Field(max_length=40)
    mode: Literal["listen", "whisper", "barge", "left"]


class InterpreterJoined(_Event):
    type: Literal["interpreter.joined"] = "interpreter.joined"
    operator_id: str
    interpreter_language: str


class InterpreterFailed(_Event):
    type: Literal["interpreter.failed"] = "interpreter.failed"
    operator_id: str
    interpreter_language: str


class InterpreterLeft(_Event):
    type: Literal["interpreter.left"] = "interpreter.left"
    operator_id: str
    cause: str | None = None


class _Segment(_Event):
    segment_id: str
    speaker: Speaker
    start_ms: int = Field(ge=0, description="From the start of this speaker's audio.")


class TranscriptPartial(_Segment):
    type: Literal["transcript.partial"] = "transcript.partial"
    text: str = Field(description="Replaced by later partials and the final of the same segment.")


class TranscriptFinal(_Segment):
    type: Literal["transcript.final"] = "transcript.final"
    text: str = Field(description="Never changes after.")
    end_ms: int = Field(ge=0)
    confidence: float = Field(ge=0, le=1)


class TranscriptAlternative(_Segment):
    type: Literal["transcript.alternative"] = "transcript.alternative"
    text: str = Field(
        max_length=2000,
        description="A second reading of the final with the same segment_id, decoded with the place names the first "
        "suggested. The final stays what the transcript shows; the map assistant weighs this one.",
    )
    end_ms: int = Field(ge=0)
    confidence: float = Field(ge=0, le=1)
    suggested: bool = Field(
        False,
        description="Not decoded: the final with one misheard span put right (a place name it sounds like), which "
        "the recogniser scored against the audio and found nearly as likely as what it heard.",
    )


class TranscriptGap(_Segment):
    type: Literal["transcript.gap"] = "transcript.gap"
    end_ms: int | None = None
    error: str | None = Field(None, description="Why this stretch has no text (the recogniser failed).")


class TranscriptStatus(_Event):
    """Transcription of one party stopped (the recogniser is unreachable or full) or goes on again. The call itself
    is never touched; audio lost meanwhile follows as a `transcript.gap`."""

    type: Literal["transcript.status"] = "transcript.status"
    speaker: Speaker
    state: Literal["unavailable", "queued", "resumed"]
    reason: str | None = Field(None, max_length=500, description="Why transcription stopped (for the desk to show).")


class AddressCandidatesEvent(_Event, AddressCandidates):
    model_config = ConfigDict(extra="forbid", frozen=False, json_schema_extra=_type_required)
    type: Literal["address.candidates"] = "address.candidates"


class AddressConfirmed(_Event):
    type: Literal["address.confirmed"] = "address.confirmed"
    confirmation_id: int
    confirmed_by: str
    operator_id: str | None = None
    segment_id: str | None = None
    district: str
    town: str | None = None
    community: str | None = None
    lng: float | None = None
    lat: float | None = None
    source: Literal["confirmed", "corrected"]


class TicketDraftEvent(_Event, TicketDraft):
    """The ticket as the call has filled it so far (a new one replaces the last; the operator's edits win)."""

    model_config = ConfigDict(extra="forbid", frozen=False, json_schema_extra=_type_required)
    type: Literal["ticket.draft"] = "ticket.draft"


_CallEvent = (
    CallOffered
    | CallAnswered
    | CallEnded
    | CallTransferred
    | CallRecorded
    | CallAlert
    | CallMonitored
    | InterpreterJoined
    | InterpreterFailed
    | InterpreterLeft
    | TranscriptPartial
    | TranscriptFinal
    | TranscriptAlternative
    | TranscriptGap
    | TranscriptStatus
    | AddressCandidatesEvent
    | AddressConfirmed
    | TicketDraftEvent
)
CallEventModel = Annotated[_CallEvent, Field(discriminator="type")]
EVENTS: TypeAdapter[CallEventModel] = TypeAdapter(CallEventModel)
EVENT_TYPES = tuple(sorted(EVENTS.json_schema()["discriminator"]["mapping"]))


class _StreamMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ts: datetime


class StreamStatus(_StreamMessage):
    type: Literal["stream.status"]
    state: Literal["live", "waiting_for_database"]
    detail: str | None = None


class Resync(_StreamMessage):
    type: Literal["resync"]
    epoch: str
    last_seq: int = Field(ge=0, description="Continue from here; reload the call over REST.")


class Ping(_StreamMessage):
    type: Literal["ping"]


DeskMessage = Annotated[_CallEvent | StreamStatus | Resync | Ping, Field(discriminator="type")]
DESK_MESSAGES: TypeAdapter[DeskMessage] = TypeAdapter(DeskMessage)


def check_event(type_: str, call_id: str, data: dict[str, Any]) -> CallEventModel:
    """The `type_` event with body `data`, or InvalidEvent saying what is wrong with it."""
    try:
        return EVENTS.validate_python({**data, "type": type_, "call_id": call_id})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or '(event)'}: {e['msg']}" for e in exc.errors())
        raise InvalidEvent(f"{type_} for call {call_id}: {problems}") from None


def desk_message_schema() -> str:
    """JSON Schema of every message the operator's WebSocket sends."""
    schema = DESK_MESSAGES.json_schema()
    schema["title"] = "Operator desk WebSocket message"
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True)


__all__ = ["EVENT_TYPES", "CallFields", "InvalidEvent", "TextSpan", "check_event", "desk_message_schema"]
