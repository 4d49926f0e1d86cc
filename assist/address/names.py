"""Naming rules for Beijing's divisions: suffixes, stems and the aliases people say instead of official names."""

from __future__ import annotations

import re

# Ethnic-township markers sit between a stem and 乡/镇: 常营回族乡, 檀营满族蒙古族乡, 长哨营满族乡.
_ETHNIC = r"(?:回族|满族蒙古族|满族|蒙古族)"
_TOWN_SUFFIX = re.compile(rf"^(?P<stem>.+?){_ETHNIC}?(?P<suffix>街道|地区|镇|乡)$")
_DISTRICT_SUFFIX = re.compile(r"^(?P<stem>.+?)(?P<suffix>区|县)$")
_BRACKETS = re.compile(r"[\uff08(][^\uff09)]*[\uff09)]")  # (...) in full or half width

TOWN_SUFFIXES = ("街道", "地区", "镇", "乡")
COMMITTEE_SUFFIXES_RESIDENT = ("社区居民委员会", "社区居委会", "居民居委会", "居民委员会", "居委会")
COMMITTEE_SUFFIXES_VILLAGE = ("村民委员会", "村委会")


def district_short(name: str) -> str:
    """海淀区 → 海淀 (a one-character stem keeps its suffix)."""
    match = _DISTRICT_SUFFIX.match(name)
    if match and len(match["stem"]) >= 2:
        return match["stem"]
    return name


def town_stem(name: str) -> str | None:
    """中关村街道 → 中关村, 南磨房地区 → 南磨房, 常营回族乡 → 常营; None for one-character stems (杨镇)."""
    match = _TOWN_SUFFIX.match(name)
    if not match:
        return None
    stem = match["stem"]
    return stem if len(stem) >= 2 else None


def town_kind(name: str) -> str:
    """街道, 镇, 乡, 地区 — or 其他 for the NBS-only development zones."""
    match = _TOWN_SUFFIX.match(name)
    return match["suffix"] if match else "其他"


def town_variants(name: str) -> list[str]:
    """Other official-sounding forms of a town's name: 卢沟桥街道 → 卢沟桥乡, 卢沟桥地区, 卢沟桥镇."""
    stem = town_stem(name)
    match = _TOWN_SUFFIX.match(name)
    if stem is None or match is None:
        return []
    out = [stem + suffix for suffix in TOWN_SUFFIXES]
    if name.endswith("街道"):
        out.append(stem + "街道办事处")
    # 常营回族乡 is also written 常营乡; keep the ethnic form too.
    return [v for v in dict.fromkeys(out) if v != name]


def clean_community(raw: str) -> tuple[str, str, list[str]]:
    """An NBS committee name → (display name, kind 社区|村, bare aliases).

    多福巷社区居委会 → (多福巷社区, 社区, [多福巷]); 韩家川村委会 → (韩家川村, 村, [韩家川]);
    火村村委会 → (火村, 村, []); 小营股份经济合作社生活区 → (小营生活区, 社区, [小营]).
    """
    name = _BRACKETS.sub("", raw).strip()
    if "经济合作社" in name:
        head, _, tail = re.split(r"(股份经济合作社|经济合作社)", name, maxsplit=1)
        display = tail if tail not in ("", "生活区") else head + "生活区"
        pieces = [p.removesuffix("生活区") for p in (tail, head)]
        bares = [p.removesuffix("村") if len(p) > 3 and p.endswith("村") else p for p in pieces]
        return display, "社区", [b for b in bares if len(b) >= 2]
    for suffix in COMMITTEE_SUFFIXES_VILLAGE:
        if name.endswith(suffix):
            stem = name.removesuffix(suffix)
            display = stem if stem.endswith("村") else stem + "村"
            return display, "村", _bare_village(display)
    for suffix in COMMITTEE_SUFFIXES_RESIDENT:
        if name.endswith(suffix):
            stem = name.removesuffix(suffix)
            display = stem if stem.endswith("社区") else stem + "社区"
            return display, "社区", _bare_community(display)
    if name.endswith("社区"):
        return name, "社区", _bare_community(name)
    if name.endswith("生活区"):
        stem = name.removesuffix("生活区")
        return name, "社区", [stem] if len(stem) >= 2 else []
    if name.endswith("村"):
        return name, "村", _bare_village(name)
    return name, "社区", []


def _bare_community(display: str) -> list[str]:
    stem = display.removesuffix("社区")
    return [stem] if len(stem) >= 2 and stem != display else []


def _bare_village(display: str) -> list[str]:
    stem = display.removesuffix("村")
    return [stem] if len(stem) >= 2 else []
