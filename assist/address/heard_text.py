"""What a transcript line says around a place name, as the recogniser writes it: its words that mark a place
(那边, 住在 …) or a firm (快递, 银行 …), the suffixes and characters it writes for others on the phone, and the line
normalised for matching (full-width folded, digits as the numerals heard)."""

from __future__ import annotations

import re
import unicodedata

from pypinyin.constants import PHRASES_DICT

from assist.address.anywhere import DIVISION_SUFFIXES
from assist.address.phonetic import readings

PLACE_WORDS_AFTER: tuple[str, ...] = (
    *("那边", "这边", "附近", "一带", "那块", "这块", "那里", "这里", "那儿", "这儿", "周边", "周围"),
    *("地区", "街道", "乡", "镇", "小区", "社区", "村"),
)
PLACE_WORDS_BEFORE = ("住在", "家在", "位于", "我在", "就在", "搬到", "来到", "是在", "地址")
# A bare name right before one of these names a firm, brand or card, not where the caller is: 东风快递, 东风汽车,
# 北京银行, 延庆卡 (a 燃气卡 as Whisper heard it). Hospitals, shops and hotels are left out: they are usually where
# their name says (朝阳医院 is in 朝阳区), as are a thing's stations (望京快递站, 马驹桥物流园).
THING_WORDS = ("快递", "物流", "公司", "集团", "银行", "汽车", "书店", "乳业", "卡")
THING_PLACES = "站柜点园"
# What the recogniser writes for a division suffix on the phone (区 as 七, 期, 去, 机; 街道 as 街等; 镇 as 正, 阵).
SUFFIX_HEARD: dict[str, frozenset[str]] = {
    "区": frozenset({"qu", "qi", "ju", "ji", "xu", "xi"}),
    "道": frozenset({"dao", "deng", "dang"}),
    "镇": frozenset({"zhen", "zheng", "zhan", "jian"}),
    "乡": frozenset({"xiang", "xian"}),
}
# What the recogniser writes for a district name's character on the phone, where the sound alone is too far or
# the character is one of ordinary speech (`bench/address_audio_bench.py --confusions dev`: 柔 as 有 7 times, 密 as
# 命 6, 顺 as 睡 7): 怀有七 is 怀柔区, 命运区 密云区.
DISTRICT_HEARD: dict[str, frozenset[str]] = {
    "柔": frozenset({"you"}),
    "密": frozenset({"ming"}),
    "顺": frozenset({"shui"}),
}
# 社区 heard as 设计, 社期, 射器, 市区; 村 as 分, 春, 尊.
COMMUNITY_SUFFIX_HEARD: dict[str, frozenset[str]] = {
    "社": frozenset({"she", "shi"}),
    "区": SUFFIX_HEARD["区"],
    "村": frozenset({"cun", "fen", "chun", "zun"}),
}


def starts_word(text: str, i: int) -> bool:
    """The character at `i`, written for a suffix the phone blurred (区 as 其), begins a word with the next one
    (命运其实: 其实 is a word, not 密云区 + 实)."""
    return text[i] != "区" and text[i : i + 2] in PHRASES_DICT


_NUMERALS = "零一二三四五六七八九"
_TENS = re.compile(r"(?<![0-9])[1-9]0(?![0-9])")  # 70: said 七十


def normalize(text: str) -> str:
    """Full-width → half-width and upper-case Latin, digits as the numerals they were heard as, character by
    character (offsets are kept). Whisper writes numbers it hears in place names as digits (房山70度镜 for 房山区十渡镇,
    6例纯 for 六里屯, 第2社区): a digit becomes its numeral (760 → 七六零), the 0 of a round two-digit number 十
    (70 → 七十), so the names are matched by sound like any other word."""
    out = []
    for ch in text:
        folded = unicodedata.normalize("NFKC", ch)
        out.append(folded.upper() if len(folded) == 1 else ch)
    tens = {match.end() - 1 for match in _TENS.finditer("".join(out))}
    return "".join(("十" if i in tens else _NUMERALS[int(ch)]) if "0" <= ch <= "9" else ch for i, ch in enumerate(out))


def sounds_like(heard: str, wanted: str) -> bool:
    """One character as heard sounds like the wanted one (a reading shared, or a suffix as the phone makes it)."""
    return heard == wanted or bool(readings(heard) & (SUFFIX_HEARD.get(wanted, frozenset()) | readings(wanted)))


def names_a_thing(text: str, surface: str, end: int) -> bool:
    """A bare name (no division suffix) followed by a firm's or product's word, or by a homophone of a word of two
    characters as the recogniser writes it: 东风快递 and 东风快地, 延庆卡."""
    if surface.endswith(DIVISION_SUFFIXES):
        return False
    for word in THING_WORDS:
        if written_or_heard(text, end, word):
            after = text[end + len(word) : end + len(word) + 1]
            return not after or after not in THING_PLACES
    return False


def written_or_heard(text: str, at: int, word: str) -> bool:
    """`word` stands at `at`, written or (a word of two characters or more) as its homophones."""
    piece = text[at : at + len(word)]
    if piece == word:
        return True
    if len(word) < 2 or len(piece) != len(word):
        return False
    return all(sounds_like(heard, wanted) for heard, wanted in zip(piece, word, strict=True))


def has_place_word(text: str, start: int, end: int) -> bool:
    """A place word right after the span (那边, 小区 …) or right before it (住在, 家在 …)."""
    after = text[end : end + 2]
    before = text[max(0, start - 2) : start]
    return any(after.startswith(w) for w in PLACE_WORDS_AFTER) or any(before.endswith(w) for w in PLACE_WORDS_BEFORE)


def division_suffix(surface: str) -> str:
    """区, 街道, 镇, 乡 or 地区 when the name ends in one after a stem of two or more characters, else ''."""
    for suffix in DIVISION_SUFFIXES:
        if surface.endswith(suffix) and len(surface) > len(suffix) + 1:
            return suffix
    return ""
