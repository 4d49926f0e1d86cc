"""What the desk knows of a call: its record (who, where from, which queue, when offered, answered, ended), built
from the call events as they come and kept in `desktop_calls` (event_tables.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from config.database import as_utc_or_none
from events.bus import CallEvent
from events.contract import (
    AddressConfirmed,
    CallAnswered,
    CallEnded,
    CallEventModel,
    CallOffered,
    CallTransferred,
    InterpreterFailed,
    InterpreterJoined,
    InterpreterLeft,
)

CALL_FACTS = (CallOffered, CallAnswered, CallTransferred, CallEnded)  # the events that change a call's record
CALL_FACT_TYPES = frozenset(str(model.model_fields["type"].default) for model in CALL_FACTS)


@dataclass
class CallInfo:
    """A call's record as the desk keeps it (one row of `desktop_calls`)."""

    call_id: str
    operator_id: str | None = None
    caller_number: str | None = None
    language: str | None = None
    queue: str | None = None
    ivr_path: list[str] = field(default_factory=list)
    interpreter_language: str | None = None
    offered_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    reason: str | None = None

    def row(self, now: datetime) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "operator_id": self.operator_id,
            "caller_number": self.caller_number,
            "language": self.language,
            "queue": self.queue,
            "ivr_path": json.dumps(self.ivr_path, ensure_ascii=False),
            "interpreter_language": self.interpreter_language,
            "offered_at": self.offered_at,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "reason": self.reason,
            "updated_at": now,
        }

    @classmethod
    def from_row(cls, row: Any) -> CallInfo:
        return cls(
            call_id=row.call_id,
            operator_id=row.operator_id,
            caller_number=row.caller_number,
            language=row.language,
            queue=row.queue,
            ivr_path=list(json.loads(row.ivr_path or "[]")),
            interpreter_language=row.interpreter_language,
            offered_at=as_utc_or_none(row.offered_at),
            answered_at=as_utc_or_none(row.answered_at),
            ended_at=as_utc_or_none(row.ended_at),
            reason=row.reason,
        )

    def absorb(self, event: CallEvent) -> None:
        """Take the call facts an event carries (later values win, missing ones keep what we had)."""
        body = event.body
        self.caller_number = body.caller_number or self.caller_number
        self.language = body.language or self.language
        match body:
            case CallOffered() | CallAnswered():
                self.queue = body.queue or self.queue
                self.interpreter_language = body.interpreter_language or self.interpreter_language
                if "ivr_path" in body.model_fields_set:
                    self.ivr_path = list(body.ivr_path)
                if isinstance(body, CallAnswered):
                    self.answered_at = event.ts
                elif self.offered_at is None:
                    self.offered_at = event.ts
            case CallEnded():
                self.ended_at = event.ts
                self.reason = body.reason or None


def operator_named(body: CallEventModel) -> str | None:
    """The operator an event names as the call's (now), if any."""
    match body:
        case (
            CallOffered()
            | CallAnswered()
            | CallTransferred()
            | InterpreterJoined()
            | InterpreterFailed()
            | InterpreterLeft()
            | AddressConfirmed()
        ):
            return body.operator_id or None
    return None
