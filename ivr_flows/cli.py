"""`hotline flows ...`: validate, diff, publish, roll back and inspect IVR flows.

Problems print as `file:line: step: message`, one per line, so editors and CI can jump to them. Exit codes:
0 success, 1 refused/invalid (or, for diff, "differs", as diff(1) does), 2 usage errors.
"""

from __future__ import annotations

import dataclasses
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ivr_flows.errors import FlowError, FlowInvalid
from ivr_flows.loader import MAX_FLOW_BYTES
from ivr_flows.model import json_schema_text
from ivr_flows.service import FlowNotFound, RollbackRefused
from ivr_flows.setup import FlowComponents, FlowsConfig
from ivr_flows.validate import ValidationReport


class FlowsCli:
    """What the commands need, built lazily from the parent `hotline` context (its settings) or injected."""

    def __init__(self, parent: Any, database_url: str | None) -> None:
        self._parent = parent
        self._database_url = database_url
        self._components: FlowComponents | None = None

    def _config(self) -> FlowsConfig:
        """The host's (`hotline`, honouring --config), else the defaults; --database wins over both."""
        from config.database import DatabaseSettings
        from ivr_flows.settings import FlowsSettings
        from ivr_flows.setup import resolved_flows_settings

        host: Callable[[], FlowsConfig] | None = getattr(self._parent, "flows_config", None)
        config = (
            host() if host is not None else FlowsConfig(resolved_flows_settings(FlowsSettings()), DatabaseSettings())
        )
        if self._database_url:
            config = dataclasses.replace(config, database=DatabaseSettings(url=self._database_url))
        return config

    def components(self) -> FlowComponents:
        if self._components is None:
            factory: Callable[[], FlowComponents] | None = getattr(self._parent, "flow_components", None)
            if factory is not None:  # tests, or a host process that already built them
                self._components = factory()
            else:
                from ivr_flows.setup import components_from_config

                self._components = components_from_config(self._config())
            # An empty database first gets the shipped flows as version 1, as the gateway's first start does.
            self._components.service.bootstrap(self._components.settings.flows_dir)
        return self._components

    def validate(self, text: str, file: str) -> ValidationReport:
        """Validation needs prompts and operators only: no database is opened (or created) for it."""
        if self._components is not None or hasattr(self._parent, "flow_components"):
            return self.components().service.validate(text, file)
        from ivr_flows.catalog import FolderPromptCatalog
        from ivr_flows.setup import context_factory
        from ivr_flows.validate import validate_text

        config = self._config()
        catalog = FolderPromptCatalog(config.flows.prompts_dir, config.flows.prompt_texts)
        context = context_factory(catalog, config.flows, config.operators, None)
        return validate_text(text, file, context())


def _echo_problems(problems: list[FlowError]) -> None:
    for problem in sorted(problems, key=lambda p: (p.file, p.line, p.message)):
        click.echo(str(problem), err=problem.severity == "error")


def _read(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FLOW_BYTES:
            raise click.ClickException(f"{path}:1: the file is {size} bytes, over {MAX_FLOW_BYTES}")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from exc


@click.group("flows")
@click.option("--database", "database_url", default=None, help="Database URL (default: the settings' database).")
@click.pass_context
def flows_group(ctx: click.Context, database_url: str | None) -> None:
    """IVR flows: validate, diff, publish, roll back, list, history, schema."""
    ctx.obj = FlowsCli(ctx.obj, database_url)


@flows_group.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.pass_obj
def validate_cmd(cli: FlowsCli, files: tuple[Path, ...]) -> None:
    """Check flow files; print every problem as file:line: step: message (exit 1 on errors)."""
    failed = False
    for path in files:
        report = cli.validate(_read(path), str(path))
        _echo_problems(report.errors + report.warnings)
        failed = failed or not report.ok
        if report.ok:
            click.echo(f"{path}: OK ({len(report.warnings)} warning(s))")
    sys.exit(1 if failed else 0)


@flows_group.command("diff")
@click.argument("number")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_obj
def diff_cmd(cli: FlowsCli, number: str, file: Path) -> None:
    """Unified diff from NUMBER's active version to FILE (exit 1 when they differ)."""
    text = cli.components().service.diff(number, _read(file), str(file))
    if text:
        click.echo(text, nl=False)
    sys.exit(1 if text else 0)


@flows_group.command("publish")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--author", default=None, help="Who publishes (default: the login name).")
@click.option("--comment", "-m", default="", help="Why (kept in the history).")
@click.pass_obj
def publish_cmd(cli: FlowsCli, file: Path, author: str | None, comment: str) -> None:
    """Validate FILE and make it the active flow of its number (a running gateway picks it up within ~1 s)."""
    try:
        result = cli.components().service.publish(
            _read(file), str(file), author=author or getpass.getuser(), comment=comment
        )
    except FlowInvalid as exc:
        _echo_problems(exc.errors)
        click.echo(f"{file}: refused; the active version is unchanged", err=True)
        sys.exit(1)
    _echo_problems(result.warnings)
    v = result.version
    if result.created:
        click.echo(f"published {v.number} version {v.version} by {v.author}")
    else:
        click.echo(f"unchanged: {v.number} version {v.version} already has this content")


@flows_group.command("rollback")
@click.argument("number")
@click.option("--to", "to", type=int, default=None, help="Version to restore (default: the one before the active).")
@click.option("--author", default=None, help="Who rolls back (default: the login name).")
@click.option("--comment", "-m", default="", help="Why.")
@click.pass_obj
def rollback_cmd(cli: FlowsCli, number: str, to: int | None, author: str | None, comment: str) -> None:
    """Re-activate an earlier version of NUMBER (recorded as a new version that copies it)."""
    try:
        result = cli.components().service.rollback(number, to=to, author=author or getpass.getuser(), comment=comment)
    except (FlowNotFound, RollbackRefused) as exc:
        click.echo(f"rollback refused: {exc}", err=True)
        sys.exit(1)
    except FlowInvalid as exc:
        _echo_problems(exc.errors)
        click.echo("rollback refused: that version no longer validates", err=True)
        sys.exit(1)
    v = result.version
    click.echo(f"rolled back {number}: version {v.version} now runs the content of version {v.restored_from}")


def _when(version: Any) -> str:
    return str(version.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S %z"))


@flows_group.command("list")
@click.pass_obj
def list_cmd(cli: FlowsCli) -> None:
    """Numbers with their active version, author and time."""
    versions = cli.components().store.active_all()
    if not versions:
        click.echo("no flows published")
        return
    click.echo(f"{'number':<10} {'version':>7}  {'author':<16} {'published':<25} comment")
    for v in versions:
        click.echo(f"{v.number:<10} {v.version:>7}  {v.author:<16} {_when(v):<25} {v.comment}")


@flows_group.command("history")
@click.argument("number")
@click.pass_obj
def history_cmd(cli: FlowsCli, number: str) -> None:
    """Every version of NUMBER, newest (active) first."""
    versions = cli.components().store.history(number)
    if not versions:
        click.echo(f"no flow published for {number}", err=True)
        sys.exit(1)
    for index, v in enumerate(versions):
        mark = "*" if index == 0 else " "
        restored = f" (restores v{v.restored_from})" if v.restored_from else ""
        click.echo(f"{mark} v{v.version:<4} {_when(v)}  {v.author:<16} {v.content_hash[:12]}  {v.comment}{restored}")


@flows_group.command("schema")
def schema_cmd() -> None:
    """Print the flow file JSON Schema (for editors: `hotline flows schema > flow.schema.json`)."""
    click.echo(json_schema_text(), nl=False)
