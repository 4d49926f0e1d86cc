"""The gateway's settings: every package's section under one root, read from the YAML file and the
environment (``config.loading``). Only the composition root knows the whole tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from agent_desktop_api.settings import AuthSettings, DesktopSettings, DispatchSettings
from asr.settings import AsrSettings
from assist.address.settings import AddressSettings
from assist.alert_settings import AlertSettings
from assist.ticket.settings import TicketSettings
from config.database_settings import DatabaseSettings
from config.loading import FileSettings, Section, SettingsError, load
from config.paths import PROJECT_ROOT
from events.settings import BusSettings
from ivr_flows.settings import FlowsSettings
from voice.settings import (
    AriSettings,
    AsteriskSettings,
    CallSettings,
    RecordingSettings,
    RoutingSettings,
    TelephonySettings,
)

__all__ = ["PROJECT_ROOT", "Settings", "SettingsError", "load_settings"]


class HttpSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "console"] = "console"


class Settings(FileSettings):
    asterisk: AsteriskSettings = Field(default_factory=AsteriskSettings)
    telephony: TelephonySettings = Field(default_factory=TelephonySettings)
    ari: AriSettings = Field(default_factory=AriSettings)
    call: CallSettings = Field(default_factory=CallSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    recording: RecordingSettings = Field(default_factory=RecordingSettings)
    address: AddressSettings = Field(default_factory=AddressSettings)
    ticket: TicketSettings = Field(default_factory=TicketSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    flows: FlowsSettings = Field(default_factory=FlowsSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    desktop: DesktopSettings = Field(default_factory=DesktopSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    asr: AsrSettings = Field(default_factory=AsrSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    data_dir: Path = Field(Path("var"), description="Base folder for relative paths in these settings.")


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings or raise SettingsError naming each bad key (environment: HOTLINE_SECTION__KEY)."""
    return load(Settings, config_file, **overrides)
