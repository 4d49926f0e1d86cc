"""`hotline-tools`: what is built or measured before the gateway runs (prompt audio, the gazetteer). The running
gateway (`hotline`) never imports these."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from assist.address.settings import AddressSettings
from config.loading import FileSettings, SettingsOnDemand
from tools.address_speech.cli import address_speech_group
from tools.gazetteer.cli import gazetteer_group
from tools.prompts import prompts_group


class ToolSettings(FileSettings):
    """The sections the tools read from the gateway's settings file; the others are the gateway's business."""

    model_config = SettingsConfigDict(**{**FileSettings.model_config, "extra": "ignore"})

    address: AddressSettings = Field(default_factory=AddressSettings)


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
    """Build-time tools of the hotline gateway: prompt audio, the Beijing gazetteer."""
    ctx.obj = SettingsOnDemand(ToolSettings, config_file)


main.add_command(prompts_group)
main.add_command(gazetteer_group)
main.add_command(address_speech_group)
