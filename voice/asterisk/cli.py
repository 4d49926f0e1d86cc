"""`hotline asterisk …`: install the embedded Asterisk and show what is installed."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from config.paths import resolve
from voice.asterisk.installer import AsteriskInstallError, install_asterisk, installed_version
from voice.settings import AsteriskSettings


class _Paths:
    """The `asterisk` section and the path resolver: the host's (`hotline`, honouring --config) when attached to
    it, else the defaults."""

    def __init__(self, ctx: click.Context) -> None:
        loader = getattr(ctx.find_root().obj, "settings", None)
        host = loader() if callable(loader) else None
        self.asterisk: AsteriskSettings = host.asterisk if host is not None else AsteriskSettings()
        self.resolve = host.resolve if host is not None else resolve


@click.group("asterisk")
def asterisk_group() -> None:
    """Install and inspect the embedded Asterisk 22 (Debian sid packages, no root install, no chroot)."""


@asterisk_group.command("install")
@click.option("--prefix", type=click.Path(path_type=Path, file_okay=False), help="Install here (asterisk.prefix).")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the .deb files here (asterisk.cache_dir).",
)
@click.option("--mirror", help="Debian mirror with the sid suite (asterisk.sid_mirror).")
@click.option("--force", is_flag=True, help="Re-install even when the prefix already holds an install.")
@click.pass_context
def install_command(
    ctx: click.Context, prefix: Path | None, cache_dir: Path | None, mirror: str | None, force: bool
) -> None:
    """Download Asterisk 22 with its libraries from Debian sid and unpack it into the prefix."""
    settings = _Paths(ctx)
    ast = settings.asterisk
    target = prefix or settings.resolve(ast.prefix)
    try:
        result = install_asterisk(
            target,
            cache_dir or settings.resolve(ast.cache_dir),
            mirror or ast.sid_mirror,
            click.echo,
            force=force,
        )
    except AsteriskInstallError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if result.source == "installed":
        click.echo(f"Asterisk {result.version} is already installed in {result.prefix} (--force re-installs)")


@asterisk_group.command("status")
@click.option("--prefix", type=click.Path(path_type=Path, file_okay=False), help="Look here (asterisk.prefix).")
@click.pass_context
def status_command(ctx: click.Context, prefix: Path | None) -> None:
    """Show the installed Asterisk version and where it is."""
    settings = _Paths(ctx)
    ast = settings.asterisk
    if ast.mode == "system":
        click.echo(f"mode system: Asterisk binary {ast.binary}")
        return
    if ast.mode == "external":
        click.echo(f"mode external: ARI at {ast.ari_url}")
        return
    target = (prefix or settings.resolve(ast.prefix)).resolve()
    stamp = installed_version(target)
    if stamp is None:
        click.echo(f"not installed in {target}: run `hotline asterisk install`")
        sys.exit(1)
    click.echo(f"Asterisk {stamp['version']} ({stamp['package_version']})")
    click.echo(f"prefix:    {target}")
    click.echo(f"installed: {stamp.get('installed_at', '?')} from {stamp.get('source', '?')}")
