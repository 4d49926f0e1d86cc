"""`hotline users ...`: accounts for the operator desktop and the admin API."""

from __future__ import annotations

import sys
from typing import Any, cast

import click

from agent_desktop_api.auth import ROLES, AuthService, Role, UnknownUser, UserExists


class UsersCli:
    def __init__(self, parent: Any, database_url: str | None) -> None:
        self._parent = parent
        self._database_url = database_url
        self._service: AuthService | None = None

    def service(self) -> AuthService:
        if self._service is None:
            factory = getattr(self._parent, "auth_service", None)
            if factory is not None:  # tests, or a host process that already built it
                self._service = cast(AuthService, factory())
            else:
                from config.database import DatabaseSettings, create_engine, database_settings

                if self._database_url:
                    db = DatabaseSettings(url=self._database_url)
                elif self._parent is not None and hasattr(self._parent, "settings"):
                    db = database_settings(self._parent.settings())
                else:
                    db = DatabaseSettings()
                self._service = AuthService(create_engine(db))
        return self._service

    def phone_ids(self, section: str) -> set[str] | None:
        """The ids of the configured phones in `telephony.<section>` (operators, supervisors), when the host has
        settings (None: cannot tell)."""
        settings_of = getattr(self._parent, "settings", None)
        if settings_of is None:
            return None
        telephony = getattr(settings_of(), "telephony", None)
        return {phone.id for phone in getattr(telephony, section)} if telephony is not None else None


def _password(stdin: bool) -> str:
    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.ClickException("empty password")
    return password


@click.group("users")
@click.option("--database", "database_url", default=None, help="Database URL (default: the settings' database).")
@click.pass_context
def users_group(ctx: click.Context, database_url: str | None) -> None:
    """Desktop and admin accounts."""
    ctx.obj = UsersCli(ctx.obj, database_url)


@users_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="operator", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_obj
def add_cmd(cli: UsersCli, name: str, role: str, password_stdin: bool) -> None:
    """Create user NAME (password asked twice, or one line on stdin)."""
    password = _password(password_stdin)
    try:
        user = cli.service().add_user(name, cast(Role, role), password)
    except UserExists as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(f"added {user.name} ({user.role})")
    if role == "operator":
        _warn_without_phone(cli, name, "operators", "the desk will show no calls")
    elif role == "supervisor":
        _warn_without_phone(cli, name, "supervisors", "listen, whisper and barge have no phone to ring")


def _warn_without_phone(cli: UsersCli, name: str, section: str, consequence: str) -> None:
    phones = cli.phone_ids(section)
    if phones is not None and name not in phones:
        click.echo(
            f"warning: {name} is not in telephony.{section} ({', '.join(sorted(phones)) or 'none'}): "
            f"{consequence} until a phone with that id is configured",
            err=True,
        )


@users_group.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_obj
def passwd_cmd(cli: UsersCli, name: str, password_stdin: bool) -> None:
    """Set NAME's password (ends the user's open sessions)."""
    try:
        cli.service().set_password(name, _password(password_stdin))
    except UnknownUser:
        click.echo(f"no user {name!r}", err=True)
        sys.exit(1)
    click.echo(f"password changed for {name}")


@users_group.command("disable")
@click.argument("name")
@click.option("--enable", is_flag=True, help="Allow the user to log in again instead.")
@click.pass_obj
def disable_cmd(cli: UsersCli, name: str, enable: bool) -> None:
    """Disable NAME: their sessions end and their open desktops close within a second."""
    try:
        cli.service().set_disabled(name, not enable)
    except UnknownUser:
        click.echo(f"no user {name!r}", err=True)
        sys.exit(1)
    click.echo(f"{name} {'enabled' if enable else 'disabled'}")


@users_group.command("list")
@click.pass_obj
def list_cmd(cli: UsersCli) -> None:
    for user in cli.service().list_users():
        click.echo(f"{user.name}\t{user.role}")
