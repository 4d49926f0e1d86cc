"""Pinyin matching of place names, so that ASR homophones and near-homophones still resolve.

Whisper wrote "海边区中官分界" for "海淀区中关村街道": 海边区 ≈ hai-dian-qu with one near syllable, 中官分 ≈
zhong-guan-cun. Each Han character becomes its toneless readings (the two commonest: 朝 is chao and zhao); syllables are
compared with fuzzy initials and finals (zh/z, ch/c, sh/s, n/l, an/ang, en/eng, in/ing) and a graded similarity
for near ones. A window of the text matches a name when nearly all syllables agree and the mean similarity
reaches a threshold; the caller (the extractor) decides what a match is worth.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from pypinyin import Style, pinyin

_INITIALS = (
    "zh",
    "ch",
    "sh",
    "b",
    "p",
    "m",
    "f",
    "d",
    "t",
    "n",
    "l",
    "g",
    "k",
    "h",
    "j",
    "q",
    "x",
    "r",
    "z",
    "c",
    "s",
    "y",
    "w",
)
_FUZZY_INITIAL = {"zh": "z", "ch": "c", "sh": "s", "n": "l"}
_FUZZY_FINAL = {"ang": "an", "iang": "ian", "uang": "uan", "eng": "en", "ing": "in"}
_CLOSE_FINALS: tuple[frozenset[str], ...] = (
    frozenset({"a", "ia", "ua"}),
    frozenset({"o", "uo", "e"}),
    frozenset({"ai", "uai", "ei", "ui"}),
    frozenset({"ao", "iao", "ou", "iu"}),
    frozenset({"an", "ian", "uan", "van"}),
    frozenset({"en", "in", "un", "vn", "ong", "iong"}),
    frozenset({"i", "v"}),
    frozenset({"ie", "ve"}),
)
_GROUP_OF = {final: n for n, group in enumerate(_CLOSE_FINALS) for final in group}

MAX_READINGS = 2
# Characters of ordinary speech that no place name contains: a window that needs one of them to "sound like" a
# name is a sentence, not a slip (我家楼 is not 呼家楼).
FUNCTION_CHARS = frozenset(
    "我你他她它们的得了着过是在有不没这那哪个些吗呢吧啊呀哦嗯就都也还跟给把被让说要会能想去来么什怎"
)
EXACT = 1.0
FUZZY = 0.9
SAME_INITIAL_CLOSE_FINAL = 0.6
SAME_FINAL = 0.5
CLOSE_FINAL = 0.3


def is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


@lru_cache(maxsize=65536)
def readings(ch: str) -> frozenset[str]:
    """Toneless readings of one character (empty for anything that is not a Han character)."""
    if not is_han(ch):
        return frozenset()
    options = [s for s in pinyin(ch, style=Style.NORMAL, heteronym=True)[0] if s.isascii() and s.isalpha()]
    # The two commonest readings (朝: chao, zhao; 长: zhang, chang); rarer ones only breed false matches.
    return frozenset(options[:MAX_READINGS])


@lru_cache(maxsize=65536)
def primary(ch: str) -> frozenset[str]:
    """The commonest reading only (what a character most likely stands for when ASR wrote it)."""
    options = readings(ch)
    if not options:
        return options
    first = pinyin(ch, style=Style.NORMAL, heteronym=False)[0][0]
    return frozenset({first}) if first in options else options


@lru_cache(maxsize=8192)
def split(syllable: str) -> tuple[str, str]:
    for initial in _INITIALS:
        if syllable.startswith(initial) and len(syllable) > len(initial):
            final = syllable[len(initial) :]
            if initial in "jqxy" and final.startswith("u"):
                # pinyin writes ü as u after j, q, x and y: 区 qu is qü, close to 七 qi; 玉 yu is yü, heard as 一 yi
                final = "v" + final[1:]
            return initial, final
    return "", syllable


_FLAT_OF = {retroflex: flat for retroflex, flat in _FUZZY_INITIAL.items() if retroflex != "n"}  # zh → z …
_RETROFLEX_OF = {flat: retroflex for retroflex, flat in _FLAT_OF.items()}


def either_initial(syllable: str) -> frozenset[str]:
    """The syllable with either initial of its flat/retroflex pair (seng, sheng), the blur of telephone Mandarin
    that `fuzzy` also folds; itself alone when it has neither."""
    initial, final = split(syllable)
    flat = _FLAT_OF.get(initial, initial)
    retroflex = _RETROFLEX_OF.get(flat)
    return frozenset({syllable}) if retroflex is None else frozenset({flat + final, retroflex + final})


@lru_cache(maxsize=8192)
def fuzzy_parts(syllable: str) -> tuple[str, str]:
    initial, final = split(syllable)
    return _FUZZY_INITIAL.get(initial, initial), _FUZZY_FINAL.get(final, final)


def fuzzy(syllable: str) -> str:
    initial, final = fuzzy_parts(syllable)
    return initial + final


@lru_cache(maxsize=65536)
def syllable_similarity(a: str, b: str) -> float:
    if a == b:
        return EXACT
    ia, fa = fuzzy_parts(a)
    ib, fb = fuzzy_parts(b)
    if ia == ib and fa == fb:
        return FUZZY
    close = _GROUP_OF.get(fa, -1) == _GROUP_OF.get(fb, -2)
    if ia == ib and close:
        return SAME_INITIAL_CLOSE_FINAL
    if fa == fb:
        return SAME_FINAL
    return CLOSE_FINAL if close else 0.0


def char_similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Best similarity between any readings of two characters."""
    if not a or not b:
        return 0.0
    if a & b:
        return EXACT
    return max(syllable_similarity(x, y) for x in a for y in b)


@dataclass(frozen=True, slots=True)
class PhoneticHit:
    start: int
    end: int
    surface: str  # the name matched (as indexed), not the text
    score: float  # mean syllable similarity
    near: int  # syllables that were only near (below fuzzy-equal)
    sims: tuple[float, ...] = ()  # per syllable
    # Mean similarity with the commonest reading of each character on both sides: what tells apart names that tie
    # on `score` through a rare reading (园 can be read wan, so 隐合弯 is 运河园 as much as 运河湾 by `score`).
    plain: float = 0.0


def strongest_first(hit: PhoneticHit) -> tuple[float, float, int]:
    """Sort key for choosing among hits: the longest match times its score, then the commonest readings' likeness
    (`plain`), then the earliest."""
    return (-(hit.end - hit.start) * hit.score, -hit.plain, hit.start)


@dataclass(frozen=True, slots=True)
class _Entry:
    surface: str
    chars: tuple[frozenset[str], ...]


class PhoneticIndex:
    """An inverted index from fuzzy syllables to (name, position), voted per alignment of a text window."""

    def __init__(self, surfaces: Iterable[str], threshold: float = 0.75) -> None:
        self.threshold = threshold
        self._entries: list[_Entry] = []
        index: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for surface in dict.fromkeys(surfaces):
            chars = tuple(readings(ch) for ch in surface)
            if len(chars) < 2 or not all(chars):
                continue
            n = len(self._entries)
            self._entries.append(_Entry(surface, chars))
            for pos, options in enumerate(chars):
                for key in {fuzzy(s) for s in options}:
                    index[key].append((n, pos))
        self._index = SyllablePostings(index)
        self._lengths = np.array([len(e.chars) for e in self._entries], dtype=np.int64)
        self._needed = np.array([_needed(len(e.chars)) for e in self._entries], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def text_readings(text: str) -> list[frozenset[str]]:
        return [readings(ch) for ch in text]

    def match(self, text: str, chars: Sequence[frozenset[str]] | None = None) -> list[PhoneticHit]:
        """Windows of the text that sound like an indexed name (exact character matches excluded)."""
        chars = chars if chars is not None else self.text_readings(text)
        hits: list[PhoneticHit] = []
        for entry_id, start in self._voted(chars):
            entry = self._entries[entry_id]
            n = len(entry.chars)
            if text[start : start + n] == entry.surface:
                continue
            window = text[start : start + n]
            if any(ch in FUNCTION_CHARS and ch != entry.surface[k] for k, ch in enumerate(window)):
                continue
            sims = [char_similarity(chars[start + k], entry.chars[k]) for k in range(n)]
            near = sum(1 for s in sims if s < FUZZY)
            score = sum(sims) / n
            same_chars = sum(1 for k, ch in enumerate(window) if ch == entry.surface[k])
            if near and not same_chars:
                continue  # a near sound needs a character written right (海边区: 海, 区) to count
            if not same_chars:
                # With no character right, every syllable must be the same, in each character's commonest
                # reading (往经 = 望京; but 路一家 is not 潞邑街 although 家 can be read jie).
                strict = [char_similarity(primary(ch), entry.chars[k]) for k, ch in enumerate(window)]
                if min(strict) < EXACT:
                    continue
            # Two syllables: both right. Three: one may be near (same final or same initial and a close final:
            # 边 bian ≈ 淀 dian). Four or more: one may be only loosely near (分 fen ≈ 村 cun).
            least = 0.9 if n == 2 else SAME_FINAL if n == 3 else CLOSE_FINAL
            if near > (0 if n == 2 else 1) or min(sims) < least or score < self.threshold:
                continue
            plain = sum(char_similarity(primary(ch), primary(entry.surface[k])) for k, ch in enumerate(window)) / n
            hits.append(PhoneticHit(start, start + n, entry.surface, round(score, 3), near, tuple(sims), plain))
        hits.sort(key=lambda h: (h.start, -(h.end - h.start), -h.score))
        return hits

    def _voted(self, chars: Sequence[frozenset[str]]) -> list[tuple[int, int]]:
        """(name, start) of the windows where enough of a name's syllables are fuzzy-equal to the text's, in the
        order their first such syllable comes in the text."""
        found = self._index.found(chars)
        if found is None:
            return []
        ids, positions, at = found
        width = len(chars) + 1
        vote_start = at - positions
        inside = vote_start >= 0
        window = ids[inside] * width + vote_start[inside]
        # One vote per syllable of the text: a character with two readings may reach the same name's syllable twice.
        votes = np.unique(window * width + at[inside])
        windows, first, counts = np.unique(votes // width, return_index=True, return_counts=True)
        entry, start = windows // width, windows % width
        kept = (counts >= self._needed[entry]) & (start + self._lengths[entry] <= len(chars))
        order = np.lexsort((-start[kept], entry[kept], votes[first[kept]] % width))
        return list(zip(entry[kept][order].tolist(), start[kept][order].tolist(), strict=True))


Postings = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]


class SyllablePostings:
    """Per fuzzy syllable, the names holding it and where, as arrays, so that a line's votes are counted in bulk
    (numpy) rather than one (name, position) at a time."""

    def __init__(self, index: dict[str, list[tuple[int, int]]]) -> None:
        self._arrays = {key: np.array(postings, dtype=np.int64).T.copy() for key, postings in index.items()}

    def found(self, chars: Sequence[frozenset[str]]) -> Postings | None:
        """(name, its syllable, the text's character) for every syllable of `chars` that a name holds; None when
        no name holds any."""
        names: list[npt.NDArray[np.int64]] = []
        positions: list[npt.NDArray[np.int64]] = []
        at: list[npt.NDArray[np.int64]] = []
        for i, options in enumerate(chars):
            for key in fuzzy_keys(options):
                postings = self._arrays.get(key)
                if postings is not None:
                    names.append(postings[0])
                    positions.append(postings[1])
                    at.append(np.full(postings.shape[1], i, dtype=np.int64))
        if not names:
            return None
        return np.concatenate(names), np.concatenate(positions), np.concatenate(at)


@lru_cache(maxsize=65536)
def fuzzy_keys(options: frozenset[str]) -> tuple[str, ...]:
    """The fuzzy syllables of a character's readings, each once, in a fixed order."""
    return tuple(dict.fromkeys(fuzzy(s) for s in sorted(options)))


def _needed(n: int) -> int:
    """Syllables that must be fuzzy-equal: all of a two-syllable name, all but one of a longer one."""
    return n if n == 2 else n - 1
