"""Which syllables of place names the recogniser writes as which others: the evidence behind the sound tables of
assist.address (near initials and finals, what a district's or a suffix's character is heard as).

Each line's reference text and its finals are aligned character by character (difflib); in every substitution of
equal length, a character of a place the line names is paired with the character written for it. Counted by
reference character and by the syllable written (commonest readings), with what the loose matcher grants the pair
today, so that a pair the recogniser makes often and the matcher refuses stands out.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from assist.address.loose import loose_syllable
from assist.address.phonetic import is_han, primary
from tools.address_speech.sentences import SpeechCase


@dataclass(frozen=True)
class Confusion:
    char: str  # the place name's character
    reading: str  # its commonest reading
    heard: str  # the reading of the character the recogniser wrote
    count: int
    similarity: float  # what the loose matcher grants the pair

    def line(self) -> str:
        return f"{self.char} {self.reading} -> {self.heard}: {self.count} (similarity {self.similarity:.2f})"


def _reading(ch: str) -> str:
    return min(primary(ch))


def _han(text: str) -> str:
    return "".join(ch for ch in text if is_han(ch))


def count_confusions(lines: Iterable[tuple[SpeechCase, Sequence[str]]]) -> list[Confusion]:
    """(case, its finals) → the substitutions inside the places each case names, commonest first."""
    counts: Counter[tuple[str, str]] = Counter()
    for case, finals in lines:
        names = [n for n in (case.district, *(case.towns or ()), case.community) if n]
        if not names:
            continue
        ref, hyp = _han(case.text), _han("".join(finals))
        matcher = difflib.SequenceMatcher(None, ref, hyp, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag != "replace" or i2 - i1 != j2 - j1:
                continue
            for said, written in zip(ref[i1:i2], hyp[j1:j2], strict=True):
                if any(said in name for name in names) and _reading(said) != _reading(written):
                    counts[(said, _reading(written))] += 1
    return [
        Confusion(char, _reading(char), heard, n, loose_syllable(_reading(char), heard))
        for (char, heard), n in counts.most_common()
    ]
