"""`hotline-tools address-speech`: write the labelled lines, synthesise their telephone audio."""

from __future__ import annotations

from pathlib import Path

import click

from assist.address.gazetteer import Gazetteer
from tools.address_speech.audio import build_audio
from tools.address_speech.cases_file import read_cases, write_cases
from tools.address_speech.sentences import build_cases
from tools.gazetteer.cli import address_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
CASES_FILE = REPO_ROOT / "tests" / "assist" / "address" / "speech_cases.yaml"
AUDIO_DIR = REPO_ROOT / "var" / "speech" / "address"


@click.group("address-speech")
def address_speech_group() -> None:
    """The address speech set: caller lines naming Beijing places, as telephone audio."""


@address_speech_group.command("cases")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=CASES_FILE, show_default=True)
@click.pass_context
def cases_command(ctx: click.Context, out: Path) -> None:
    """Write the labelled lines from the gazetteer (same seed, same lines)."""
    address = address_settings(ctx)
    gazetteer = Gazetteer.load(address.resolve(address.gazetteer_file))
    cases = build_cases(gazetteer)
    write_cases(cases, out)
    held = sum(c.set == "holdout" for c in cases)
    click.echo(f"{len(cases)} lines ({len(cases) - held} dev, {held} held out) → {out}")


@address_speech_group.command("audio")
@click.option("--cases", "cases_file", type=click.Path(path_type=Path, dir_okay=False), default=CASES_FILE)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=AUDIO_DIR, show_default=True)
def audio_command(cases_file: Path, out: Path) -> None:
    """Synthesise the clips that are missing (the Mandarin TTS environment is created on first use)."""
    cases = read_cases(cases_file)
    build_audio(cases, out, click.echo)
    click.echo(f"{len(cases)} clips in {out}")
