"""Pinyin similarity and the phonetic index."""

from __future__ import annotations

from assist.address.phonetic import (
    EXACT,
    FUZZY,
    SAME_FINAL,
    SAME_INITIAL_CLOSE_FINAL,
    PhoneticIndex,
    readings,
    split,
    syllable_similarity,
)


def test_readings_are_toneless_and_cover_place_name_polyphones() -> None:
    assert readings("海") == frozenset({"hai"})
    assert {"chao", "zhao"} <= readings("朝")  # 朝阳 is chao
    assert "chang" in readings("长")  # 长辛店 is chang
    assert readings("a") == frozenset() and readings("，") == frozenset()


def test_fuzzy_initials_and_finals() -> None:
    assert syllable_similarity("guan", "guan") == EXACT
    for a, b in [
        ("zhong", "zong"),
        ("chang", "cang"),
        ("shan", "san"),
        ("nan", "lan"),
        ("fang", "fan"),
        ("deng", "den"),
        ("jing", "jin"),
    ]:
        assert syllable_similarity(a, b) == FUZZY, (a, b)
    assert syllable_similarity("bian", "dian") == SAME_FINAL  # 海边 ≈ 海淀
    assert 0 < syllable_similarity("fen", "cun") < SAME_FINAL  # 分 ≈ 村, loosely
    assert syllable_similarity("wo", "hai") == 0.0
    # ü is written u after y as after j, q, x: 玉 yu is close to 一 yi, 园 yuan to 延 yan.
    assert split("yue") == ("y", "ve") and split("yu") == ("y", "v")
    assert syllable_similarity("yu", "yi") == SAME_INITIAL_CLOSE_FINAL
    assert syllable_similarity("yuan", "yan") == SAME_INITIAL_CLOSE_FINAL


def test_index_finds_slips_but_not_exact_text() -> None:
    index = PhoneticIndex(["海淀区", "中关村街", "望京", "回龙观"])
    surfaces = {h.surface for h in index.match("海边区中官分界那边路灯坏了")}
    assert surfaces == {"海淀区", "中关村街"}
    assert [h.surface for h in index.match("回龙关这边")] == ["回龙观"]
    assert index.match("海淀区") == []  # exact characters are the automaton's job
    assert index.match("我家楼下的路灯坏了三天了") == []


def test_function_characters_never_stand_for_a_name() -> None:
    index = PhoneticIndex(["呼家楼"])
    assert index.match("我家楼下") == []
