"""Character error rate for Mandarin, normalised as ../shared/speech-zh/README.md says.

Both sides are normalised the same way before scoring:
1. traditional -> simplified characters (zhconv, script conversion only: `zh-hans`);
2. full-width forms -> ASCII, Latin letters lower-cased;
3. Arabic numbers -> hanzi: a run read as a cardinal when it looks like one ("50" -> 五十, "205" -> 二百零五),
   digit by digit when it is a code, a phone number or a year ("13582" -> 一三五八二, "2019年" -> 二零一九年),
   decimals as 点 ("3.5" -> 三点五); 幺 -> 一 and the ideographic zero -> 零 (phone numbers are read
   with 幺);
4. punctuation, symbols and spaces removed.

CER of a set = sum of edit distances / sum of reference lengths (not the mean of per-clip rates).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import zhconv  # type: ignore[import-untyped]

_DIGITS = "零一二三四五六七八九"
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _digitwise(run: str) -> str:
    return "".join(_DIGITS[int(ch)] for ch in run)


def _cardinal_below_10000(n: int) -> str:
    if n == 0:
        return "零"
    out: list[str] = []
    units = [(1000, "千"), (100, "百"), (10, "十"), (1, "")]
    zero_pending = False
    for value, unit in units:
        digit = (n // value) % 10
        if digit == 0:
            if out:
                zero_pending = True
            continue
        if zero_pending:
            out.append("零")
            zero_pending = False
        out.append(_DIGITS[digit] + unit)
    text = "".join(out)
    return text[1:] if text.startswith("一十") else text  # 10..19: 十, 十五


def _cardinal(n: int) -> str:
    """Cardinal reading of 0 <= n < 10^8 (万 grouping); callers only pass up to four digits today."""
    if n < 10000:
        return _cardinal_below_10000(n)
    high, low = divmod(n, 10000)
    text = _cardinal_below_10000(high) + "万"
    if low:
        text += ("零" if low < 1000 else "") + _cardinal_below_10000(low)
    return text


def number_to_hanzi(run: str, following: str = "") -> str:
    """One Arabic number (digits, optionally with a decimal part) as hanzi, as it is usually read."""
    integer, _, fraction = run.partition(".")
    is_code = len(integer) > 1 and integer.startswith("0")  # 010, 007
    is_year = len(integer) == 4 and following.startswith("年")
    is_long = len(integer) >= 5  # phone numbers, the hotline's own 12345, ids
    head = _digitwise(integer) if is_code or is_year or is_long else _cardinal(int(integer))
    return head + ("点" + _digitwise(fraction) if fraction else "")


def _numbers_to_hanzi(text: str) -> str:
    parts: list[str] = []
    last = 0
    for match in _NUMBER.finditer(text):
        parts.append(text[last : match.start()])
        parts.append(number_to_hanzi(match.group(), text[match.end() : match.end() + 1]))
        last = match.end()
    parts.append(text[last:])
    return "".join(parts)


@lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """The text as it is scored: simplified, no punctuation or spaces, numbers in hanzi, 幺 -> 一."""
    text = unicodedata.normalize("NFKC", text)  # full-width digits and letters -> ASCII
    text = zhconv.convert(text, "zh-hans")
    text = text.lower()
    text = _numbers_to_hanzi(text)
    text = text.replace("幺", "一").replace("\u3007", "零")
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in ("L", "N"))


def edit_distance(ref: str, hyp: str) -> int:
    """Levenshtein distance between two strings (substitutions, insertions, deletions all cost 1)."""
    if len(ref) < len(hyp):
        ref, hyp = hyp, ref
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class CerResult:
    errors: int
    ref_chars: int
    clips: int

    @property
    def cer(self) -> float:
        return self.errors / self.ref_chars if self.ref_chars else 0.0


def cer(reference: str, hypothesis: str) -> float:
    """CER of one pair after normalisation (edit distance / normalised reference length)."""
    return corpus_cer([(reference, hypothesis)]).cer


def corpus_cer(pairs: Iterable[tuple[str, str]]) -> CerResult:
    """CER over a set: total edit distance over total reference characters (both normalised)."""
    errors = chars = clips = 0
    for reference, hypothesis in pairs:
        ref = normalize(reference)
        errors += edit_distance(ref, normalize(hypothesis))
        chars += len(ref)
        clips += 1
    return CerResult(errors=errors, ref_chars=chars, clips=clips)
