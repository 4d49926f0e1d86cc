"""How settings are read: defaults in each package's section model, a YAML file (``config/hotline.yaml`` by
default), environment overrides.

Precedence, highest first: ``HOTLINE_<SECTION>__<KEY>`` environment variables, the YAML file, the defaults.
The YAML file is chosen with ``HOTLINE_CONFIG`` (a path) or ``--config`` on the command line.
This module knows no section: the composition root (``hotline.settings``) lists them.
"""

from __future__ import annotations

import os
import sys
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from config.paths import DEFAULT_CONFIG_FILE, resolve

# The file `load` was given, for this load only (the process environment stays untouched).
_CONFIG_FILE: ContextVar[str | None] = ContextVar("hotline_config_file", default=None)


class SettingsError(Exception):
    """Invalid settings: the message names every bad key and what is wrong with it."""


class Section(BaseModel):
    """A settings section: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class FileSettings(BaseSettings):
    """Root of a settings tree read from the environment and the YAML file."""

    model_config = SettingsConfigDict(
        env_prefix="HOTLINE_",
        env_nested_delimiter="__",
        extra="forbid",
        yaml_file=None,
        yaml_file_encoding="utf-8",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_path = _CONFIG_FILE.get() or os.environ.get("HOTLINE_CONFIG") or str(DEFAULT_CONFIG_FILE)
        return (
            init_settings,
            env_settings,
            YamlConfigSettingsSource(settings_cls, yaml_file=yaml_path),
        )

    def resolve(self, path: Path) -> Path:
        """Relative paths in settings are relative to the project root (where `var/` lives)."""
        return resolve(path)


_S = TypeVar("_S", bound=FileSettings)


def describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(root)"
        lines.append(f"  {key}: {item['msg']}")
    return "invalid settings:\n" + "\n".join(lines)


def load(settings_cls: type[_S], config_file: Path | None = None, **overrides: Any) -> _S:
    """Load settings or raise SettingsError naming each bad key (environment: HOTLINE_SECTION__KEY)."""
    if config_file is not None and not config_file.is_file():
        raise SettingsError(f"invalid settings:\n  config file {config_file}: not found")
    token = _CONFIG_FILE.set(str(config_file) if config_file is not None else None)
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from exc
    except (OSError, ValueError) as exc:  # unreadable or malformed YAML
        raise SettingsError(f"invalid settings:\n  config file: {exc}") from exc
    finally:
        _CONFIG_FILE.reset(token)


class SettingsOnDemand(Generic[_S]):
    """A command line's settings, read at first use (`--config` or the default file); invalid ones end the
    command with exit code 2 and each bad key named."""

    def __init__(self, settings_cls: type[_S], config_file: Path | None) -> None:
        self.settings_cls = settings_cls
        self.config_file = config_file
        self._settings: _S | None = None

    def settings(self) -> _S:
        if self._settings is None:
            try:
                self._settings = load(self.settings_cls, self.config_file)
            except SettingsError as exc:
                print(exc, file=sys.stderr)
                raise SystemExit(2) from None
        return self._settings
