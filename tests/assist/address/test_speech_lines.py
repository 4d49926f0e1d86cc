"""The address speech sets' lines read as typed (no recogniser): every phrasing of both sets gives the card the line
names, and no line naming no place gets one. What the recogniser loses is measured by bench/address_audio_bench.py;
this guards what the matcher itself must never lose, whatever the sentence around the place."""

from __future__ import annotations

from pathlib import Path

import pytest

from assist.address.extract import AddressExtractor
from tools.address_speech.cases_file import read_cases
from tools.address_speech.cli import CASES_FILE, RETEST_CASES_FILE
from tools.address_speech.score import SetScore, replay_card


@pytest.mark.parametrize("cases_file", [CASES_FILE, RETEST_CASES_FILE], ids=["original", "retest"])
def test_every_line_read_as_typed_gives_the_place_it_names(extractor: AddressExtractor, cases_file: Path) -> None:
    score = SetScore("typed")
    score.outcomes = [replay_card(extractor, c, [("final", c.text, "s0")]) for c in read_cases(cases_file)]
    wrong = [(o.case.text, o.card) for o in score.outcomes if not o.right]
    # One street name may be two districts' (八里庄: 朝阳区 and 海淀区): said alone, either is a fair card.
    assert (score.district() or 0.0) >= 0.99, wrong
    assert score.town() == 1.0 and score.community() == 1.0, wrong
    assert score.false_address() == 0.0, wrong
