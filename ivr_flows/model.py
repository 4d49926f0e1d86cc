"""The flow format: one YAML file per entry number, a start step and a map of steps (DESIGN §4).

Models are frozen: a published `Flow` is shared by every call that started on it, and nothing may change it
underneath them. Unknown fields are refused (extra=forbid) so that a typo in a flow file is an error, not a
silently ignored setting.
"""

from __future__ import annotations

import json
import re
from datetime import date, time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

STEP_ID = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
# ISO 639 code, optionally with a region/script ("zh-TW"), or "other" for the interpreter centre's catch-all.
LANGUAGE = r"^([a-z]{2,3}(-[A-Za-z0-9]{2,8})?|other)$"
# A prompt reference: NAME resolves in the caller's language with the flow's fallback chain; NAME@LANG is played
# in that language only (the bilingual greeting plays welcome@zh then welcome@en whatever the caller chose).
PROMPT = r"^[A-Za-z0-9_.-]{1,80}(@([a-z]{2,3}(-[A-Za-z0-9]{2,8})?))?$"
DIGITS = re.compile(r"^[0-9*#]+$")

StepId = Annotated[str, Field(pattern=STEP_ID)]
Language = Annotated[str, Field(pattern=LANGUAGE)]
PromptRef = Annotated[str, Field(pattern=PROMPT)]
TimeRange = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]|24):[0-5][0-9]$")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def split_prompt(ref: str) -> tuple[str, str | None]:
    """`welcome@en` → ("welcome", "en"); `welcome` → ("welcome", None)."""
    name, _, language = ref.partition("@")
    return name, language or None


class _Model(BaseModel):
    # Numbers become text where text is expected: `number: 12345` unquoted is what people write.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class PlayStep(_Model):
    type: Literal["play"]
    prompts: list[PromptRef] = Field(min_length=1)
    interruptible: bool = Field(
        False, description="A key press cuts the prompt short; the key is kept for the next menu (type-ahead)."
    )
    next: StepId


class MenuStep(_Model):
    type: Literal["menu"]
    prompts: list[PromptRef] = Field(min_length=1, description="Played interruptibly: callers may key ahead.")
    options: dict[str, StepId] = Field(description="Digits → step. Quote keys such as '*' and '#' in YAML.")
    timeout_s: float = Field(5.0, gt=0, le=60, description="Wait for the first key after the prompts.")
    inter_digit_s: float = Field(2.0, gt=0, le=30, description="Wait between keys of a multi-digit entry.")
    max_digits: int = Field(1, ge=1, le=16)
    terminator: Literal["", "#", "*"] = Field("", description="Key that ends a multi-digit entry early.")
    retries: int = Field(
        2, ge=0, le=9, description="Failed entries (timeout or invalid) tolerated: retries+1 failures → on_failure."
    )
    invalid_prompt: PromptRef | None = None
    timeout_prompt: PromptRef | None = None
    on_failure: StepId

    @field_validator("options", mode="before")
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:
        # JSON/API callers may send numbers; YAML keys arrive as text already (see loader).
        if isinstance(value, dict):
            return {str(key): target for key, target in value.items()}
        return value


class SetLanguageStep(_Model):
    type: Literal["set_language"]
    language: Language
    next: StepId


class _Routing(_Model):
    queue: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    skills: list[Language] = Field(min_length=1, description="The operator must have every one of them.")
    prompts: list[PromptRef] = Field(default_factory=list, description="Played before queueing (please hold).")
    max_wait_s: float = Field(120.0, gt=0, le=3600)
    ring_timeout_s: float = Field(15.0, gt=0, le=120)
    announce_every_s: float = Field(30.0, gt=0, le=600)
    on_no_operator: StepId | None = Field(None, description="No operator with these skills at all (or failure).")
    on_callback: StepId | None = Field(None, description="Waited max_wait_s; a callback request was recorded.")


class RouteStep(_Routing):
    type: Literal["route"]


class InterpreterStep(_Routing):
    """A Mandarin operator (queue/skills) plus the interpreter centre's extension for `language`."""

    type: Literal["interpreter"]
    language: Language = Field(description="Interpreter centre language code ('other' = its generic desk).")
    skills: list[Language] = Field(default_factory=lambda: ["zh"], min_length=1)


class TransferStep(_Model):
    type: Literal["transfer"]
    target: str = Field(
        pattern=r"^((queue|external):)?[A-Za-z0-9_.-]{1,40}$",
        description="An operator id, queue:<skill> or external:<name> of telephony.external_destinations "
        "(never a dial string).",
    )
    on_failure: StepId | None = Field(None, description="Transfer refused; without it the call is hung up.")


class HangupStep(_Model):
    type: Literal["hangup"]
    prompts: list[PromptRef] = Field(default_factory=list, description="Played before hanging up (goodbye).")


class GotoStep(_Model):
    type: Literal["goto"]
    next: StepId


class BranchRule(_Model):
    """Matches when every condition given matches (weekdays, hours, holiday); omitted ones match always."""

    weekdays: list[Weekday] | None = None
    hours: list[TimeRange] | None = Field(
        None, description="HH:MM-HH:MM ranges, start inclusive, end exclusive; 22:00-06:00 spans midnight."
    )
    holiday: bool | None = Field(None, description="true: only on the flow's holidays; false: only on other days.")
    next: StepId

    @field_validator("hours")
    @classmethod
    def _ranges(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            start, end = item.split("-")
            if start == end:
                raise ValueError(f"empty time range {item!r}")
            if end.startswith("24") and end != "24:00":
                raise ValueError(f"bad end time in {item!r}")
        return value

    def matches(self, weekday: Weekday, clock: time, is_holiday: bool) -> bool:
        if self.weekdays is not None and weekday not in self.weekdays:
            return False
        if self.holiday is not None and self.holiday != is_holiday:
            return False
        if self.hours is None:
            return True
        minute = clock.hour * 60 + clock.minute
        for item in self.hours:
            start, end = (_minutes(part) for part in item.split("-"))
            inside = start <= minute < end if start < end else (minute >= start or minute < end)
            if inside:
                return True
        return False


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


class BranchStep(_Model):
    type: Literal["branch"]
    rules: list[BranchRule] = Field(min_length=1, description="First matching rule wins.")
    default: StepId


Step = Annotated[
    PlayStep
    | MenuStep
    | SetLanguageStep
    | RouteStep
    | InterpreterStep
    | TransferStep
    | HangupStep
    | GotoStep
    | BranchStep,
    Field(discriminator="type"),
]
STEP_TYPES = ("play", "menu", "set_language", "route", "interpreter", "transfer", "hangup", "goto", "branch")
STEP_ADAPTER: TypeAdapter[Step] = TypeAdapter(Step)


class QueuePrompts(_Model):
    """What a queue says while the caller waits, in the caller's language (fallback chain per sentence).

    `position` and `wait` name *sequences* (ivr_flows/prompt_texts.yaml `sequences`): lists of prompts per
    language and count, e.g. queue_position with 3 callers ahead → queue_ahead_intro, num_3, queue_ahead_outro.
    """

    position: str = Field("queue_position", description="Sequence said with the number of callers ahead.")
    wait: str = Field("expected_wait", description="Sequence said with the expected wait in minutes.")
    callback: PromptRef = Field("callback_recorded", description="Prompt played once a callback is recorded.")


class FlowHeader(_Model):
    """Everything in a flow file except its steps (validated separately, one step at a time)."""

    number: str = Field(pattern=r"^[0-9*#+]{1,20}$", description="Entry number the flow answers.")
    name: str = Field(min_length=1, max_length=200)
    default_language: Language
    languages: list[Language] = Field(
        min_length=1, description="Prompt fallback chain tried after the caller's own language, in order."
    )
    timezone: str = Field("Asia/Shanghai", description="IANA zone for time-of-day branches.")
    holidays: list[date] = Field(default_factory=list)
    queue_prompts: QueuePrompts = Field(default_factory=QueuePrompts)
    start: StepId

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class Flow(FlowHeader):
    steps: dict[Annotated[str, Field(pattern=STEP_ID)], Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _start_exists(self) -> Flow:
        if self.start not in self.steps:
            raise ValueError(f"start step {self.start!r} is not defined")
        return self

    def prompt_chain(self, language: str) -> list[str]:
        """Languages tried for a prompt when the caller's language is `language`."""
        chain = [language]
        chain.extend(lang for lang in self.languages if lang not in chain)
        return chain


def json_schema() -> dict[str, Any]:
    schema = Flow.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Hotline IVR flow"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
