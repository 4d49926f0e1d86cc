"""Extraction behaviour: the event contract, hierarchy, conflicts, partials, phonetic slips, no false hits."""

from __future__ import annotations

import json

import pytest

from assist.address.extract import AddressExtractor
from assist.address.second_reading import SecondReadings
from assist.address.settings import AddressSettings


def test_event_matches_the_desktop_contract(extractor: AddressExtractor) -> None:
    result = extractor.extract("我在朝阳区望京街道，小区门口的垃圾三天没人收了", "seg-7")
    event = result.event()
    json.dumps(event, ensure_ascii=False)  # serialisable as it is
    assert event["type"] == "address.candidates"
    assert event["segment_id"] == "seg-7"
    assert event["span"] == {"start": 2, "end": 9, "text": "朝阳区望京街道"}
    top = event["candidates"][0]
    for key in ("district", "town", "community", "adcode", "lng", "lat", "crs", "level", "confidence", "source"):
        assert key in top
    assert (top["district"], top["town"], top["community"]) == ("朝阳区", "望京街道", None)
    assert top["adcode"] == "110105026" and top["level"] == "town" and top["crs"] == "WGS84"
    assert top["source"] == "gazetteer" and 0.85 <= top["confidence"] <= 0.99
    assert top["coord_level"] == "town" and top["bbox"] is not None
    assert 116.4 < top["lng"] < 116.55 and 39.95 < top["lat"] < 40.05
    assert event["conflicts"] == []


def test_community_level_candidate_and_codes(extractor: AddressExtractor) -> None:
    top = extractor.extract("海淀区中关村街道科源社区楼道里堆满了杂物", "s").top
    assert top is not None
    assert (top.level, top.community, top.community_code) == ("community", "科源社区", "110108011001")
    assert (top.town_code, top.district_code, top.adcode) == ("110108011", "110108", "110108011001")
    assert top.coord_level == "town"  # no registry has community points: the street's box centre
    assert [m.level for m in top.mentions] == ["district", "town", "community"]


def test_conflict_community_not_in_named_street(extractor: AddressExtractor) -> None:
    result = extractor.extract("我住在海淀区学院路街道科源社区，门口的路灯坏了", "s")
    assert result.top is not None and result.top.town == "学院路街道"
    assert len(result.conflicts) == 1
    conflict = result.conflicts[0]
    assert conflict.kind == "community_not_in_town"
    assert (conflict.place, conflict.named, conflict.actual) == ("科源社区", "学院路街道", "海淀区中关村街道")
    flagged = [c for c in result.candidates if c.conflicts]
    assert flagged and flagged[0].community == "科源社区"  # still a candidate, ranked below the named street
    assert flagged[0].confidence < result.candidates[0].confidence


def test_conflict_town_not_in_named_district(extractor: AddressExtractor) -> None:
    result = extractor.extract("西城区望京那边有人乱扔垃圾", "s")
    assert [c.kind for c in result.conflicts] == ["town_not_in_district"]
    assert result.conflicts[0].actual == "朝阳区"


def test_a_line_naming_two_districts_gives_no_sure_card(extractor: AddressExtractor) -> None:
    for text in [
        "我住在平谷区山东区、区、密云区、山东区、密云区、密云区、密",  # the recogniser reciting its prompt
        "你好,我是海淀区东城区、冤官林颜社区的基尼",
    ]:
        result = extractor.extract(text, "s")
        assert len({c.district for c in result.candidates}) == 2, text
        assert max(c.confidence for c in result.candidates) < 0.8, text
    one = extractor.extract("我住在平谷区,物业什么都不管", "s").top
    assert one is not None and one.confidence >= 0.8  # one district, said outright: sure


def test_ambiguous_name_resolved_by_the_district(extractor: AddressExtractor) -> None:
    for district in ("朝阳区", "海淀区"):
        result = extractor.extract(f"{district}八里庄那边有人占道", "s")
        assert result.top is not None
        assert (result.top.district, result.top.town) == (district, "八里庄街道")
        assert not result.conflicts
    alone = extractor.extract("八里庄那边有人占道", "s")
    assert {c.district for c in alone.candidates} == {"朝阳区", "海淀区"}
    assert max(c.confidence for c in alone.candidates) < 0.7


def test_partial_and_context_complete_the_hierarchy(extractor: AddressExtractor) -> None:
    result = extractor.extract("我住在海淀区", "s", partial="中关村街道那边")
    assert result.top is not None and result.top.town == "中关村街道"
    assert {m.source for m in result.top.mentions} == {"final", "partial"}
    assert result.span is not None and result.span.text == "海淀区"
    later = extractor.extract("八里庄这边的路灯坏了", "s", context=["你好，我是朝阳区的"])
    assert later.top is not None and later.top.district == "朝阳区"


def test_whisper_slip_resolves_with_lower_confidence(extractor: AddressExtractor) -> None:
    slip = extractor.extract("海边区中官分界那边路灯坏了", "s")
    exact = extractor.extract("海淀区中关村街道那边路灯坏了", "s")
    assert slip.top is not None and exact.top is not None
    assert (slip.top.district, slip.top.town) == ("海淀区", "中关村街道")
    assert slip.top.source == "gazetteer+phonetic"
    assert {m.kind for m in slip.top.mentions} == {"phonetic"}
    assert slip.top.confidence < exact.top.confidence
    assert slip.span is not None and slip.span.text == "海边区中官分界"


def test_no_address_no_candidates(extractor: AddressExtractor) -> None:
    for text in ("我家楼下的路灯坏了三天了", "东风汽车的售后服务太差了", "小区前门有人乱停车", ""):
        assert extractor.extract(text, "s").candidates == [], text


def test_a_bare_name_before_a_firm_or_card_is_not_a_place(
    extractor: AddressExtractor, second_readings: SecondReadings
) -> None:
    # 我在 would support 东风 as 东风乡; 延庆卡 is how Whisper heard 燃气卡; 快地 is how it heard 快递 on one call
    for text in (
        "我在东风快递寄的包裹丢了",
        "家里的延庆卡充不进去钱",
        "我在光明乳业买的牛奶坏了",
        "我在东风快地迹的包裹丢了",
    ):
        assert extractor.extract(text, "s").candidates == [], text
    for text, town in (("东风地区的快递丢了", "东风乡"), ("望京快递站把我的件弄丢了", "望京街道")):
        top = extractor.extract(text, "s").top
        assert top is not None and top.town == town, text
    top = extractor.extract("延庆的燃气卡充不进去钱", "s").top
    assert top is not None and top.district == "延庆区"
    # nor does another reading of such a line make the firm's name a place
    assert second_readings.extract("我在东风快递急的包裹丢了。", "我在东风快避迹的包裹丢了。", "s") is None


def test_numbers_whisper_wrote_as_digits_are_matched_as_the_numerals_said(extractor: AddressExtractor) -> None:
    # Whisper base on 房山区十渡镇前头港村 and 朝阳区六里屯街道 through the phone
    top = extractor.extract("我家在房山70度镜前偷港车。", "s").top
    assert top is not None and (top.district, top.town) == ("房山区", "十渡镇")
    result = extractor.extract("朝阳区6里屯街道的路灯坏了", "s")
    assert result.top is not None and result.top.town == "六里屯街道"
    assert result.span is not None and result.span.text == "朝阳区6里屯街道"  # the digit as heard, in its place


def test_a_community_named_only_by_its_number_is_never_sure_alone(extractor: AddressExtractor) -> None:
    alone = extractor.extract("我要反映一下,星月露第四社区饭馆的油烟太大了", "s").top  # 清苑路第四社区, misheard
    assert alone is None or alone.confidence < 0.8
    named = extractor.extract("我住在密云区溪翁庄镇第四社区", "s").top
    assert named is not None and named.community == "第四社区" and named.confidence >= 0.8


def test_a_community_heard_without_its_first_syllable_is_not_sure_alone(extractor: AddressExtractor) -> None:
    # Dev line: 北土门村 (平谷区) heard as 对土门村. 土门村 (密云区) is there word for word, but so may be 北土门村 or
    # 南土门村 with their first syllable misheard: the card stays, below sure.
    clipped = extractor.extract("对土门村这边小区里的充电装一直用不了", "s").top
    assert clipped is not None and clipped.community == "土门村" and clipped.confidence < 0.8
    for said in ("我住在土门村,小区里的充电桩一直用不了", "土门村这边有人乱停车"):  # nothing before it to lose
        top = extractor.extract(said, "s").top
        assert top is not None and top.community == "土门村" and top.confidence >= 0.8, said
    named = extractor.extract("我住在密云区北庄镇土门村", "s").top  # what else the caller named says which one
    assert named is not None and named.community == "土门村" and named.confidence >= 0.8


def test_a_sound_alike_takes_in_the_suffix_heard_after_it(extractor: AddressExtractor) -> None:
    # Whisper base on 海淀区中关村街道 through a call: the desk writes the official names over all of it
    result = extractor.extract("您好,我家就在海电器中官村接等。楼下的路都坏了三天了", "s")
    assert result.top is not None and result.span is not None and result.span.text == "海电器中官村接等"
    assert [(m.text, m.name) for m in result.top.mentions] == [("海电器", "海淀区"), ("中官村接等", "中关村街道")]
    result = extractor.extract("海边区中官村那边有个井盖塌了", "s")  # 那边 is no 街道
    assert result.top is not None and [m.text for m in result.top.mentions] == ["海边区", "中官村"]


def test_short_ordinary_words_need_context(extractor: AddressExtractor) -> None:
    assert extractor.extract("希望能给我们一个光明的未来", "s").candidates == []
    result = extractor.extract("顺义区光明那边有个井盖塌了", "s")
    assert result.top is not None and result.top.town == "光明街道"


def test_variants_nbs_names_and_colloquial_areas(extractor: AddressExtractor) -> None:
    expectations = {
        "丰台区卢沟桥乡这边": "卢沟桥街道",
        "朝阳区南磨房地区": "南磨房乡",
        "海淀区万柳地区": "海淀镇",
        "国贸那边": "建外街道",
        "回龙观这边": "回龙观街道",
    }
    for text, town in expectations.items():
        top = extractor.extract(text, "s").top
        assert top is not None and top.town == town, text


def test_full_width_and_latin_text(extractor: AddressExtractor) -> None:
    top = extractor.extract("ＣＢＤ这边有人发传单", "s").top
    assert top is not None and top.district == "朝阳区"


def test_settings_limit_candidates_and_phonetic(extractor: AddressExtractor) -> None:
    narrow = AddressExtractor(extractor.gazetteer, AddressSettings(max_candidates=1, phonetic=False))
    assert len(narrow.extract("八里庄那边有人占道", "s").candidates) == 1
    assert narrow.extract("海边区中官分界那边路灯坏了", "s").candidates == []


def test_a_line_read_again_gives_the_same_card_under_each_segment_and_context(extractor: AddressExtractor) -> None:
    """A line is read again for each second reading of it: the answer is the first one, under the segment asked
    for, and a line read with other context is read afresh."""
    line = "我在孙河乡这边，楼下的垃圾好几天没人清了"
    first = extractor.extract(line, "seg-1")
    again = extractor.extract(line, "seg-2")
    assert (first.segment_id, again.segment_id) == ("seg-1", "seg-2")
    assert again.top == first.top and again.span == first.span
    with_district = extractor.extract(line, "seg-3", context=["我是朝阳区的"])
    assert with_district.top is not None and first.top is not None
    assert with_district.top.district == first.top.district == "朝阳区"
    assert with_district.top.confidence > first.top.confidence  # the district said before firms the street up
    assert extractor.extract(line, "seg-4").top == first.top  # and the line alone still reads as it did


def test_of_two_communities_alike_through_a_rare_reading_the_one_heard_in_common_readings_wins(
    extractor: AddressExtractor,
) -> None:
    # 通运街道运河湾社区 as Whisper base heard it on the phone. 园 can also be read wan, so 运河园社区 (a neighbour in
    # the same street) sounded exactly as much like 隐合弯社区, and came first in the index: a sure card, and wrong.
    heard = "麻烦记一下,通周期通运街道隐合弯社区公园里的建生器裁坏了,帮忙协调一下。"
    top = extractor.extract(heard, "s").top
    assert top is not None and (top.town, top.community) == ("通运街道", "运河湾社区")
    written = extractor.extract("通运街道运河园社区的路灯坏了", "s").top  # the other one, said, is still itself
    assert written is not None and written.community == "运河园社区"


@pytest.mark.parametrize(
    ("heard", "district", "town", "short_name"),
    [
        # Lines as Whisper base heard other voices than the tuned one on the phone: the shorter name written
        # inside the longer one heard by sound was a sure card (宝山镇 91 %, 杨镇 92 %, the village 北章村 90 %).
        ("就在巴宝山街道,小巨的门均坏了谁都门均。谢谢。", "石景山区", "八宝山街道", "宝山镇"),
        ("防身区长杨镇道田伊村这边,楼下收烤弹天天路到半夜。", "房山区", "长阳镇", "杨镇"),
        ("大星骅北章村镇这边水管爆了水流了一地,我都打了好几次电话了。", "大兴区", "北臧村镇", "北章村"),
    ],
)
def test_a_longer_name_heard_whole_by_sound_wins_over_a_shorter_one_written_inside_it(
    extractor: AddressExtractor, heard: str, district: str, town: str, short_name: str
) -> None:
    top = extractor.extract(heard, "s").top
    assert top is not None and (top.district, top.town) == (district, town)
    assert short_name not in {top.town, top.community}
    said = extractor.extract(f"我们就在{short_name}这边", "s").top  # the shorter name said alone is still itself
    assert said is not None and short_name in {said.town, said.community}
