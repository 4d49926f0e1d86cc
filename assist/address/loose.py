"""Loose sound-alike search over a few names, for when the context has already narrowed the choice.

The recogniser writes place names as near-homophones that a city-wide match must refuse (梁香 for 良乡, 理研 for
梨园, 盟坦 for 龙潭). Once the district is known, only its 10-40 streets/towns are in play, and once nothing else is
named, only the 16 districts: a looser similarity is then safe. It grades every syllable pair (tones ignored):
the fuzzy pairs of `phonetic` (zh/z, n/l, an/ang ...), then telephone confusions of the initial (d/t, b/p, g/k,
f/h, j/q/x, z/c/s, l/n/r, and what this recogniser does: ch/t, p/t, b/d) or of the final's nasal (a/ang, ia/iang,
e/en, i/in), the finals it writes for one another (庄 as 中), and a syllable the recogniser dropped. Windows are
scored on Han characters only, so punctuation inside a name (广、安门外) does not break it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from assist.address.phonetic import (
    FUNCTION_CHARS,
    FUZZY,
    SyllablePostings,
    fuzzy,
    fuzzy_parts,
    is_han,
    primary,
    split,
    syllable_similarity,
)

_NEAR_INITIALS: tuple[frozenset[str], ...] = (
    frozenset({"d", "t"}),
    frozenset({"b", "p"}),
    frozenset({"g", "k"}),
    frozenset({"f", "h"}),
    frozenset({"j", "q", "x"}),
    frozenset({"z", "c", "s"}),
    frozenset({"l", "n", "r"}),
    frozenset({"r", "y"}),  # 柔 heard as 有
    frozenset({"y", ""}),
    frozenset({"w", ""}),
    # Counted on the dev lines' place names (same final, initial written wrong): ch/c as t 8 times (朝 as 涛),
    # p as t 4 (平谷 as 停谷), b as d 3 (边 for 淀).
    frozenset({"c", "t"}),
    frozenset({"p", "t"}),
    frozenset({"b", "d"}),
)
_NASAL_PAIRS = frozenset(
    {("a", "an"), ("ia", "ian"), ("ua", "uan"), ("e", "en"), ("i", "in"), ("u", "un"), ("o", "ong"), ("v", "vn")}
    | {("ei", "en"), ("ui", "un"), ("ai", "an")}  # the coda's -i or -n lost on the line: 顺 heard as 睡
)
# Finals this recogniser writes for one another on telephone speech (counted on the dev lines' place names by
# `bench/address_audio_bench.py --confusions dev`): 庄 zhuang as 中 zhong 19 times.
_HEARD_FINALS = frozenset({("uang", "ong")})
NEAR_INITIAL = 0.6
NEAR_NASAL = 0.6
NEAR_HEARD = 0.75
DROPPED = 0.0  # a syllable the recogniser left out counts nothing, but the window may still match


def _near_initial(a: str, b: str) -> bool:
    return any(a in group and b in group for group in _NEAR_INITIALS)


@lru_cache(maxsize=65536)
def loose_syllable(a: str, b: str) -> float:
    base = syllable_similarity(a, b)
    if base >= NEAR_INITIAL:
        return base
    ia, fa = fuzzy_parts(a)
    ib, fb = fuzzy_parts(b)
    if fa == fb and _near_initial(ia, ib):
        return NEAR_INITIAL
    if ia == ib and ((fa, fb) in _NASAL_PAIRS or (fb, fa) in _NASAL_PAIRS):
        return NEAR_NASAL
    ra, rb = split(a)[1], split(b)[1]
    if ia == ib and ((ra, rb) in _HEARD_FINALS or (rb, ra) in _HEARD_FINALS):
        return NEAR_HEARD
    return base


@lru_cache(maxsize=65536)
def loose_char(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    if a & b:
        return 1.0
    return max(loose_syllable(x, y) for x in a for y in b)


@dataclass(frozen=True, slots=True)
class LooseHit:
    start: int  # offsets in the text (not the Han-only sequence)
    end: int
    surface: str
    key: str  # what the caller indexed it by (a gazetteer code)
    score: float  # mean syllable similarity, a dropped syllable counting 0
    least: float  # the weakest syllable that was there
    sims: tuple[float, ...] = ()  # per syllable of the name (a dropped one: DROPPED)
    dropped: bool = False


@dataclass(frozen=True, slots=True)
class _Name:
    surface: str
    key: str
    chars: tuple[frozenset[str], ...]


class LooseMatcher:
    """A handful of names, each scored against the windows of a text that share at least one syllable with it
    (an anchor: a name with no syllable heard right is not there); the best hit per name returned."""

    def __init__(
        self,
        names: Sequence[tuple[str, str]],
        alike: Mapping[str, frozenset[str]] | None = None,
        unanchored: frozenset[str] = frozenset(),
    ) -> None:
        """`alike`: readings that count as the same as a name's character (区 heard as 七, 期, 去 ...);
        `unanchored`: characters too common to anchor a window on (a suffix every name has)."""
        alike = alike or {}
        self._names = [
            # 平 is ping: its rare reading pian would only breed hits.
            _Name(surface, key, tuple(primary(ch) | alike.get(ch, frozenset()) for ch in surface))
            for surface, key in dict.fromkeys(names)
            if len(surface) >= 2
        ]
        anchors: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for n, name in enumerate(self._names):
            for pos, options in enumerate(name.chars):
                if name.surface[pos] in unanchored:
                    continue
                for syllable in {fuzzy(s) for s in options}:
                    anchors[syllable].append((n, pos))
        self._anchors = SyllablePostings(anchors)

    def scan(
        self,
        text: str,
        least_score: float,
        *,
        anchors: int = 1,
        least_syllable: float = 0.0,
        function_chars: bool = False,
    ) -> list[LooseHit]:
        """Hits scoring at least `least_score`, best first; one per name (its best window). `anchors`: how many of
        a name's syllables a window must have heard right (fuzzy-equal) to be scored at all; `least_syllable`: a
        window with a syllable there but less close is not that name's best (the same name with that syllable
        dropped may be: 与警山汽 is 石景山区 only as 警山汽); `function_chars`: 的, 有, 个 ... may stand for a
        syllable of the name at any similarity (only where another reading already wrote the name there)."""
        han = [i for i, ch in enumerate(text) if is_han(ch)]
        chars = [primary(text[i]) for i in han]  # what the recogniser most likely meant by the character
        plain = [text[i] in FUNCTION_CHARS and not function_chars for i in han]
        hits: list[LooseHit] = []
        for name_id, candidates in self._voted(chars, anchors):
            name = self._names[name_id]
            best: LooseHit | None = None
            n = len(name.chars)
            for length in (n, n - 1) if n >= 4 else (n,):
                for start in candidates:
                    if start + length > len(chars):
                        continue
                    sims = _align(chars[start : start + length], name.chars)
                    if any(plain[start : start + length]) and (length < n or _plain_misfit(plain[start:], sims)):
                        continue  # 我, 的, 是 ... are not part of a place name, unless they sound the same (去 = 区)
                    score = sum(sims) / n
                    if score < least_score or (best is not None and score <= best.score):
                        continue
                    least = min([s for s in sims if s > DROPPED] or [0.0])
                    if least < least_syllable:
                        continue
                    end = han[start + length - 1] + 1
                    best = LooseHit(han[start], end, name.surface, name.key, score, least, tuple(sims), length < n)
            if best is not None:
                hits.append(best)
        hits.sort(key=lambda h: -h.score)
        return hits

    def _voted(self, chars: Sequence[frozenset[str]], anchors: int) -> list[tuple[int, list[int]]]:
        """Per name, the starts (>= 0, ascending) of the windows with at least `anchors` of its syllables heard
        right where they fall, the window also taken one later (a syllable before it dropped); the names in the
        order the text first reaches them."""
        found = self._anchors.found(chars)
        if found is None:
            return []
        name, pos, char_at = found
        width, deepest = len(chars) + 2, int(pos.max()) + 1
        # The names' order: the first character of the text that votes for each, whichever window it votes for.
        reached = np.unique(name * width + char_at)
        names_reached, first = np.unique(reached // width, return_index=True)
        first_char = dict(zip(names_reached.tolist(), (reached[first] % width).tolist(), strict=True))
        start = np.concatenate([char_at - pos, char_at - pos + 1])  # as heard, and with a syllable before it dropped
        name, pos = np.concatenate([name, name]), np.concatenate([pos, pos])
        inside = start >= 0
        window = name[inside] * width + start[inside]
        # Each syllable of the name counts once per window (two readings, or both alignments, may reach it).
        votes = np.unique(window * deepest + pos[inside])
        windows, counts = np.unique(votes // deepest, return_counts=True)
        kept = windows[counts >= anchors]
        if not len(kept):
            return []
        kept_names, kept_starts = (kept // width).tolist(), (kept % width).tolist()
        by_name: dict[int, list[int]] = {}
        for name_id, first in zip(kept_names, kept_starts, strict=True):
            by_name.setdefault(name_id, []).append(first)
        return [(n, by_name[n]) for n in sorted(by_name, key=lambda n: (first_char[n], n))]


def _plain_misfit(plain: Sequence[bool], sims: Sequence[float]) -> bool:
    return any(p and sim < FUZZY for p, sim in zip(plain, sims, strict=False))


def _align(window: Sequence[frozenset[str]], name: Sequence[frozenset[str]]) -> list[float]:
    """Per name syllable, its similarity in the window; with a window one shorter, the dropped syllable that
    leaves the best sum counts 0."""
    if len(window) == len(name):
        return [loose_char(w, c) for w, c in zip(window, name, strict=True)]
    # Each window syllable against the name's syllable at its place (a dropped one after it) or the next one (a
    # dropped one before it): every choice of the dropped syllable is made of these two rows.
    before = [loose_char(w, c) for w, c in zip(window, name, strict=False)]
    after = [loose_char(w, c) for w, c in zip(window, name[1:], strict=True)]
    best: list[float] = []
    best_sum = 0.0
    for skip in range(len(name)):
        sims = [*before[:skip], DROPPED, *after[skip:]]
        total = sum(sims)  # left to right as the list reads: of equal sums, the earliest choice stays
        if total > best_sum:
            best, best_sum = sims, total
    return best
