"""The ticket (工单) draft: what the call has told us so far, in the fields the operator files.

The ticket assistant publishes it as ``ticket.draft`` whenever it changes; the desk overlays the operator's own
edits (an edited field is never overwritten by a later draft) and stores what is submitted.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ResponseClass = Literal["2h", "24h", "7d", "15d"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CategoryGuess(_Model):
    code: str = Field(description="Leaf code in the catalogue, e.g. 04.03.01.")
    path: list[str] = Field(description="The three level names, top first.")
    score: float = Field(ge=0, le=1, description="Share of the best guess's evidence (the top one is 1).")
    words: list[str] = Field(description="The caller's words that suggested it.")
    response: ResponseClass
    dispatch: str = Field(description="`town`, `district` or a department / company name, from the catalogue.")


class CategoryChoice(_Model):
    """A leaf of the catalogue as the desk offers it to the operator."""

    code: str
    path: list[str]
    response: ResponseClass
    dispatch: str
    keywords: list[str] = Field(default_factory=list)


class TicketFields(_Model):
    """The fields of a ticket: the draft's guesses, the operator's edits and the submitted ticket alike."""

    callback_number: str | None = Field(None, max_length=32, description="A number the caller said to call back.")
    caller_name: str | None = Field(None, max_length=40)
    district: str | None = Field(None, max_length=64)
    town: str | None = Field(None, max_length=64)
    town_code: str | None = Field(None, max_length=12)
    community: str | None = Field(None, max_length=64)
    detail: str | None = Field(None, max_length=200, description="Building, unit, room or a landmark.")
    category_code: str | None = Field(None, max_length=16)
    category: str | None = Field(None, max_length=120, description="The category's path, joined with ' / '.")
    response: ResponseClass | None = None
    dispatch_unit: str | None = Field(None, max_length=120)
    summary: str | None = Field(None, max_length=2000)


class TicketDraft(TicketFields):
    categories: list[CategoryGuess] = Field(default_factory=list, description="Top 3, best first.")
    urgent_words: list[str] = Field(default_factory=list, description="Words that raised the response to 2 h.")
    segments: int = Field(0, ge=0, description="How many of the caller's lines it was made from.")


def dispatch_unit(dispatch: str, district: str | None, town: str | None) -> str | None:
    """Who a ticket of a category with `dispatch` goes to, for its place: the street/town office (`town`), the
    district government (`district`), or the department the catalogue names. One rule for the draft and the desk."""
    if dispatch == "town":
        return f"{district or ''}{town}" if town else (f"{district}（属地街乡待定）" if district else None)
    if dispatch == "district":
        return f"{district}人民政府" if district else None
    return dispatch
