"""`hotline`: the one command of the gateway (serve, install Asterisk, inspect settings, ...). Each package owns
its command group; this host attaches them and hands them the settings (``--config``) they ask for."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from config.loading import SettingsOnDemand
from hotline.settings import Settings

if TYPE_CHECKING:
    from asr.hints import DecodeHints
    from ivr_flows.setup import FlowsConfig


class _Context(SettingsOnDemand[Settings]):
    def __init__(self, config_file: Path | None) -> None:
        super().__init__(Settings, config_file)

    def decode_hints(self) -> DecodeHints | None:
        """What `hotline asr serve` guides its second decodes with: the gazetteer's streets (None without one)."""
        from assist.address.gazetteer import GazetteerMissing
        from assist.address.hints import PlaceHints
        from assist.address.service import AddressResolver

        try:
            resolver = AddressResolver.from_settings(self.settings().address)
        except GazetteerMissing:
            return None
        return PlaceHints(resolver.extractor)

    def flows_config(self) -> FlowsConfig:
        """What `hotline flows` needs of the settings (the operators' skills check the routing steps)."""
        from hotline.service import interpreted_languages, operator_skills
        from ivr_flows.setup import FlowsConfig, resolved_flows_settings

        s = self.settings()
        return FlowsConfig(
            resolved_flows_settings(s.flows, s.resolve),
            s.database,
            operators=operator_skills(s),
            interpreter_languages=interpreted_languages(s),
        )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Settings file (default: config/hotline.yaml; also HOTLINE_CONFIG).",
)
@click.pass_context
def main(ctx: click.Context, config_file: Path | None) -> None:
    """Voice gateway for city service hotlines (Beijing 12345)."""
    ctx.obj = _Context(config_file)


@main.command()
@click.option(
    "--role",
    type=click.Choice(["all", "voice", "assist", "desk"]),
    default="all",
    show_default=True,
    help="Run one part in this process (voice: Asterisk, flows, routing, recognition; assist: the map and ticket "
    "assistants; desk: the operators' API and page). Every role but 'all' meets the others on the bus (bus.url).",
)
@click.pass_obj
def serve(obj: _Context, role: str) -> None:
    """Start Asterisk (or attach to one) and the gateway; Ctrl-C or SIGTERM stops both cleanly."""
    from hotline.logging_setup import configure_logging
    from hotline.service import run_service

    settings = obj.settings()
    configure_logging(settings.logging.level, settings.logging.format)
    sys.exit(asyncio.run(run_service(settings, role)))


@main.group("config")
def config_group() -> None:
    """Inspect the effective settings."""


@config_group.command("show")
@click.pass_obj
def config_show(obj: _Context) -> None:
    """Print the effective settings (file + environment) as JSON; secrets are masked."""
    click.echo(json.dumps(obj.settings().model_dump(mode="json"), indent=2, ensure_ascii=False))


@config_group.command("check")
@click.pass_obj
def config_check(obj: _Context) -> None:
    """Validate the settings and exit 0, or print each bad key and exit 2."""
    obj.settings()
    click.echo("settings OK")


@main.group("db")
def db_group() -> None:
    """The database schema: bring it up to date, see where it is."""


@db_group.command("upgrade")
@click.pass_obj
def db_upgrade(obj: _Context) -> None:
    """Apply the migrations the database lacks (idempotent; `hotline serve` does it too at start)."""
    from config.database import create_engine
    from hotline import schema

    engine = create_engine(obj.settings().database)
    try:
        before = schema.current_revision(engine)
        schema.upgrade(engine)
        after = schema.current_revision(engine)
    finally:
        engine.dispose()
    click.echo(f"database at {after}" + (f" (was {before or 'empty'})" if before != after else " (up to date)"))


@db_group.command("status")
@click.pass_obj
def db_status(obj: _Context) -> None:
    """Print the database's revision and the newest one; exit 1 when it is behind."""
    from config.database import create_engine
    from hotline import schema

    engine = create_engine(obj.settings().database)
    try:
        current = schema.current_revision(engine)
    finally:
        engine.dispose()
    head = schema.head_revision()
    click.echo(f"database {current or 'not migrated'}, newest {head}")
    sys.exit(0 if current == head else 1)


def _attach_subcommands() -> None:
    from agent_desktop_api.cli import users_group
    from asr.cli import asr_group, models_group
    from events.cli import events_group
    from hotline.cluster.cli import cluster_group
    from hotline.demo import demo_command
    from ivr_flows.cli import flows_group
    from voice.asterisk.cli import asterisk_group

    groups = (asterisk_group, flows_group, users_group, models_group, asr_group, events_group, cluster_group)
    for group in groups:
        main.add_command(group)
    main.add_command(demo_command)


_attach_subcommands()


if __name__ == "__main__":  # python -m hotline.cli (what the installed `hotline` command runs)
    main()
