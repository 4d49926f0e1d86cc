"""`hotline events ...`: the published event contract."""

from __future__ import annotations

import click

from events.contract import EVENT_TYPES, desk_message_schema


@click.group("events")
def events_group() -> None:
    """The event contract between calls and desks."""


@events_group.command("schema")
def schema_cmd() -> None:
    """Print the JSON Schema of every message the operator's WebSocket sends."""
    click.echo(desk_message_schema())


@events_group.command("types")
def types_cmd() -> None:
    """List the event types a call may publish."""
    for name in EVENT_TYPES:
        click.echo(name)
