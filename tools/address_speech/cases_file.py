"""The address speech set's labels as a YAML file (committed, so the set does not move when the gazetteer is
rebuilt)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tools.address_speech.sentences import SpeechCase

HEADER = """\
# The address speech set: lines a 12345 caller says, synthesised as telephone audio by
# `hotline-tools address-speech audio`. Written by `hotline-tools address-speech cases` from the gazetteer
# (fixed seed). district/towns/community: what the address card must show (towns: any of them; null: no place).
# set: dev (tuned on) or holdout (never tuned on; its streets do not occur in dev).
"""


def write_cases(cases: list[SpeechCase], path: Path, note: str = "") -> None:
    rows = [
        {
            "id": c.id,
            "set": c.set,
            "tag": c.tag,
            "text": c.text,
            "district": c.district,
            "towns": list(c.towns) if c.towns else None,
            "community": c.community,
        }
        for c in cases
    ]
    body = yaml.safe_dump({"cases": rows}, allow_unicode=True, sort_keys=False, width=200, default_flow_style=None)
    path.write_text(HEADER + "".join(f"# {line}\n" for line in note.splitlines()) + body, encoding="utf-8")


def read_cases(path: Path) -> list[SpeechCase]:
    raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        SpeechCase(
            id=r["id"],
            text=r["text"],
            tag=r["tag"],
            district=r["district"],
            towns=tuple(r["towns"]) if r["towns"] else None,
            community=r["community"],
            set=r["set"],
        )
        for r in raw["cases"]
    ]
