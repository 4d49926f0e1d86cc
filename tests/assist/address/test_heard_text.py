"""What a transcript line says around a place name: normalised text, place and firm words, suffixes as heard."""

from __future__ import annotations

from assist.address.heard_text import has_place_word, names_a_thing, normalize, sounds_like, starts_word


def test_full_width_is_folded_and_latin_upper_cased_character_by_character() -> None:
    assert normalize("ＣＢＤ，望京soho") == "CBD,望京SOHO"


def test_digits_become_the_numerals_heard_and_offsets_are_kept() -> None:
    assert normalize("房山70度镜") == "房山七十度镜"  # 房山区十渡镇: a round number is said 七十
    assert normalize("怀有760秒钟") == "怀有七六零秒钟"  # 琉璃庙: digit by digit
    assert normalize("第2社区") == "第二社区"
    assert len(normalize("6例纯接到")) == len("6例纯接到")


def test_a_bare_name_before_a_firms_word_names_a_thing_not_a_place() -> None:
    line = "我在东风快递急的包裹丢了"
    assert names_a_thing(line, "东风", 4)
    assert names_a_thing("我在东风快地急的包裹丢了", "东风", 4)  # 快递 as the recogniser wrote it
    assert not names_a_thing("望京快递站旁边", "望京", 2)  # a thing's station is where its name says
    assert not names_a_thing("东风乡快递", "东风乡", 3)  # a name with its division suffix is a place
    assert not names_a_thing("东风那边", "东风", 2)


def test_place_words_before_or_after_a_name() -> None:
    assert has_place_word("我住在西单", 3, 5)
    assert has_place_word("西单那边有人摆摊", 0, 2)
    assert not has_place_word("西单有人摆摊", 0, 2)


def test_a_suffix_as_the_phone_makes_it_sounds_like_the_suffix() -> None:
    assert sounds_like("期", "区") and sounds_like("等", "道")
    assert not sounds_like("天", "区")


def test_a_blurred_suffix_that_begins_a_word_is_that_word() -> None:
    assert starts_word("命运其实", 2)  # 其实: not 密云区 + 实
    assert not starts_word("命运区实", 2)
