"""The `ticket:` settings section (env: HOTLINE_TICKET__<KEY>)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from assist.ticket.catalogue import DEFAULT_CATALOGUE
from config.loading import Section


class TicketSettings(Section):
    enabled: bool = Field(True, description="Draft a ticket from each call's words (the `ticket.draft` events).")
    catalogue_file: Path = Field(
        DEFAULT_CATALOGUE,
        description="The shipped problem catalogue (three levels, YAML): in force until a version is published "
        "(POST /api/admin/catalogue).",
    )
    reload_s: float = Field(2.0, gt=0, le=300, description="How often each process looks for a newer catalogue.")
