"""Fill a ticket from what the caller said and where the map card puts it.

Rules, not a model: each is cheap (well under a millisecond per line), explainable to the operator (the words
behind every guess are shown) and measured on a labelled set (`bench/ticket_bench.py`).
- category: every leaf scores the length of each of its words found in the caller's lines (a longer, more
  specific phrase outweighs a short one); the top 3 are offered;
- response class: the category's, raised to 2 h by an urgent word (燃气泄漏, 停电, 被困 …);
- callback number: a mobile (1xxxxxxxxxx) or Beijing landline said in digits or Chinese numerals (幺三八…);
- name: 我姓王 / 免贵姓王 / 我叫王小明;
- detail: building, unit, floor and room (3号楼2单元501, 五号楼三门);
- dispatch: the street/town office of the address for local matters, the district, or the catalogue's department.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from assist.ticket.catalogue import Catalogue, Category
from events.address import AddressCandidate
from events.ticket import CategoryGuess, TicketDraft, dispatch_unit

TOP_CATEGORIES = 3
SUMMARY_CHARS = 200

_NUMERALS = str.maketrans("零〇一幺二两三四五六七八九", "0011223456789")
_DIGIT_RUN = re.compile(r"[0-9零〇一幺二两三四五六七八九](?:[\s,，、\-—.。]*[0-9零〇一幺二两三四五六七八九]){6,}")
_MOBILE = re.compile(r"1[3-9]\d{9}")
_LANDLINE = re.compile(r"(?:010)?[2-9]\d{7}")
_NUMBER_CUE = re.compile(r"电话|号码|手机|回电|打给我|联系我|打这个")
_SURNAME = re.compile(r"(?:免贵姓|我姓)([\u4e00-\u9fff])(?:[,，。\s]|$|先生|女士|的|是)")
_FULL_NAME = re.compile(r"我叫([\u4e00-\u9fff]{2,3}?)(?=[,，。\s]|$|我|住|家|是|的|啊)")
_CN_OR_DIGITS = r"(?:[0-9]+|[一二三四五六七八九十两]+)"
_PART = rf"{_CN_OR_DIGITS}(?:号楼|栋|幢|号院|单元|门|层|楼|号|室)"
# Parts in a row, then a bare room number after the unit or entrance (二单元五零一).
_DETAIL = re.compile(rf"(?:{_PART})+(?:(?:(?<=单元)|(?<=门))[0-9零〇一幺二三四五六七八九]{{3,4}}(?:室|号)?)?")
_FILLERS = re.compile(r"(?:嗯+|啊+|呃+|那个|就是说|然后呢|喂+)[,，、]?")


@dataclass(frozen=True)
class PlaceFix:
    """A place name the recogniser misheard in a line, as the map card resolved it (the desk shows the same)."""

    start: int
    end: int
    heard: str
    name: str


@dataclass(frozen=True)
class Line:
    """One of the caller's final lines."""

    segment_id: str
    text: str
    fixes: tuple[PlaceFix, ...] = ()

    def corrected(self) -> str:
        """The line with each misheard place name written as the official one (海电器中官村接等 → 海淀区中关村街道)."""
        out, at = [], 0
        for fix in sorted(self.fixes, key=lambda f: f.start):
            if fix.start < at or self.text[fix.start : fix.end] != fix.heard:
                continue  # overlapping, or not this text: keep what was heard
            out += [self.text[at : fix.start], fix.name]
            at = fix.end
        return "".join([*out, self.text[at:]])


def _compact(text: str) -> str:
    return re.sub(r"[\s,，。.!！?？、；;：:\"“”'‘’]", "", text)


def suggest(text: str, catalogue: Catalogue, top: int = TOP_CATEGORIES) -> list[tuple[Category, list[str], float]]:
    """The leaves whose words occur in `text`, best first: (category, matched words, raw score)."""
    compact = _compact(text)
    scored: list[tuple[Category, list[str], float]] = []
    for category in catalogue.leaves():
        words = sorted({w for w in (*category.leaf.keywords, category.leaf.name) if w and w in compact}, key=len)
        # A word inside a longer matched word of the same leaf is not counted twice (电梯 in 电梯坏).
        kept = [w for w in words if not any(w != other and w in other for other in words)]
        if kept:
            scored.append((category, sorted(kept, key=compact.find), float(sum(len(w) for w in kept))))
    scored.sort(key=lambda item: -item[2])
    return scored[:top]


def urgent_words(text: str, catalogue: Catalogue) -> list[str]:
    compact = _compact(text)
    return [w for w in catalogue.urgent_words if w in compact]


def callback_number(text: str) -> str | None:
    """The last phone number said (callers correct themselves), digits only."""
    found: str | None = None
    for run in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"\D", "", run.group().translate(_NUMERALS))
        if _MOBILE.fullmatch(digits) or (
            _LANDLINE.fullmatch(digits) and _NUMBER_CUE.search(text[max(0, run.start() - 12) : run.start()])
        ):
            found = digits
    return found


def caller_name(text: str) -> str | None:
    if match := _FULL_NAME.search(text):
        return match.group(1)
    if match := _SURNAME.search(text):
        surname = match.group(1)
        after = text[match.end(1) : match.end(1) + 5]  # 我姓王，王先生
        return surname + ("先生" if "先生" in after else "女士" if "女士" in after else "")
    return None


def detail(text: str) -> str | None:
    spans = [
        m.group() for m in _DETAIL.finditer(_compact(text)) if not re.fullmatch(rf"{_CN_OR_DIGITS}[号楼层]", m.group())
    ]
    return max(spans, key=len) if spans else None


def summary(lines: Sequence[Line]) -> str:
    """The caller's lines, fillers out, misheard place names written right, at most SUMMARY_CHARS."""
    text = "，".join(_FILLERS.sub("", line.corrected()).strip(" ，,。") for line in lines if line.text.strip())
    text = re.sub(r"[，,]{2,}", "，", text).strip("，")
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def draft(lines: Sequence[Line], place: AddressCandidate | None, catalogue: Catalogue) -> TicketDraft:
    """The ticket as the caller's lines so far and the map card's place make it."""
    text = "，".join(line.text for line in lines)
    guesses = suggest(text, catalogue)
    best = guesses[0][2] if guesses else 1.0
    categories = [
        CategoryGuess(
            code=c.leaf.code,
            path=list(c.path),
            score=round(score / best, 3),
            words=words,
            response=c.leaf.response,
            dispatch=c.leaf.dispatch,
        )
        for c, words, score in guesses
    ]
    urgent = urgent_words(text, catalogue)
    first = categories[0] if categories else None
    response = "2h" if urgent else (first.response if first is not None else None)
    return TicketDraft(
        callback_number=callback_number(text),
        caller_name=caller_name(text),
        district=place.district if place is not None else None,
        town=place.town if place is not None else None,
        town_code=place.town_code if place is not None else None,
        community=place.community if place is not None else None,
        detail=detail(text),
        category_code=first.code if first is not None else None,
        category=" / ".join(first.path) if first is not None else None,
        response=response,
        dispatch_unit=(
            dispatch_unit(first.dispatch, place.district if place else None, place.town if place else None)
            if first is not None
            else None
        ),
        summary=summary(lines) or None,
        categories=categories,
        urgent_words=urgent,
        segments=len(lines),
    )
