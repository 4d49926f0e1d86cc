"""Loose sound-alikes: the recogniser's versions of place names, found once the context narrows the names."""

from __future__ import annotations

from assist.address.extract import AddressExtractor
from assist.address.hints import MAX_READINGS, PlaceHints
from assist.address.loose import NEAR_HEARD, NEAR_INITIAL, LooseMatcher, loose_syllable
from assist.address.phonetic import FUZZY


def test_telephone_confusions_are_near_but_not_the_same() -> None:
    for a, b in [("da", "ta"), ("bei", "pei"), ("feng", "heng"), ("qi", "xi"), ("lu", "ru")]:
        assert loose_syllable(a, b) == NEAR_INITIAL, (a, b)
    assert loose_syllable("xiang", "xia") == NEAR_INITIAL  # a nasal the line swallowed
    assert loose_syllable("qu", "qi") > 0  # 区 heard as 七/期: ü and i are close
    assert loose_syllable("zhuang", "zuan") == FUZZY
    assert loose_syllable("wo", "hai") == 0.0


def test_the_recogniser_s_own_confusions_count_as_near() -> None:
    assert loose_syllable("zhuang", "zhong") == NEAR_HEARD  # 庄 written as 中 (东杨庄村 as 东阳中村)
    assert loose_syllable("yu", "yi") > 0  # 峪 as 一: yu is yü, close to yi
    for a, b in [("chao", "tao"), ("ping", "ting"), ("bian", "dian")]:
        assert loose_syllable(a, b) == NEAR_INITIAL, (a, b)
    assert loose_syllable("zhuang", "zhang") < NEAR_HEARD  # only the pair it really makes


def test_a_district_written_with_the_recogniser_s_characters_is_found(extractor: AddressExtractor) -> None:
    for text, district in [
        ("我家在怀有七流灵调证,楼上漏水", "怀柔区"),  # 柔 as 有, a word of ordinary speech
        ("我就在命运驱骨楼接到冰两北林社区", "密云区"),  # 密 as 命
        ("与警山汽轻顶接接到这边有人站着消防通道停车", "石景山区"),  # 石 lost: the rest is the name
    ]:
        top = extractor.extract(text, "s").top
        assert top is not None and top.district == district, (text, top)
    assert extractor.extract("他的命运其实很好", "s").candidates == []


def test_matcher_ignores_punctuation_inside_a_name_and_maps_back_to_the_text() -> None:
    matcher = LooseMatcher([("广安门外街道", "t1"), ("广安门内街道", "t2")])
    text = "我家在广、安门外街道那边"
    hits = matcher.scan(text, 0.9)
    assert hits[0].key == "t1" and text[hits[0].start : hits[0].end] == "广、安门外街道"


def test_matcher_finds_a_name_with_a_syllable_dropped() -> None:
    hits = LooseMatcher([("天通苑南街道", "t")]).scan("昌平区天通南街道这边", 0.8)
    assert hits and hits[0].key == "t" and hits[0].score < 1.0


def test_streets_misheard_by_the_recogniser_resolve_in_the_named_district(extractor: AddressExtractor) -> None:
    for text, district, town in [
        ("你好,我是东城区天谈跌道的居民", "东城区", "天坛街道"),
        ("我在通州区理研镇这边,路灯坏了", "通州区", "梨园镇"),
        ("我家在昌平区流村建六十港村", "昌平区", "流村镇"),
    ]:
        top = extractor.extract(text, "s").top
        assert top is not None, text
        assert (top.district, top.town) == (district, town), (text, top)
        assert top.source == "gazetteer+phonetic"
        assert [m.name for m in top.mentions if m.level == "town"] == [town]


def test_a_district_heard_as_a_sound_alike_is_found_when_nothing_else_is_named(extractor: AddressExtractor) -> None:
    for text, district in [("我家在大星期这边,暖气不热", "大兴区"), ("唱平去那边工地太吵了", "昌平区")]:
        top = extractor.extract(text, "s").top
        assert top is not None and top.district == district, (text, top)


def test_a_district_heard_right_before_a_street_checks_that_street(extractor: AddressExtractor) -> None:
    # 星分街道 alone sounds most like 兴丰街道 (大兴区), but 风台七 before it is 丰台区, whose 新村街道 it also
    # sounds like
    top = extractor.extract("我这儿是风台七星分街道,有人站直销访通道警车", "s").top
    assert top is not None and (top.district, top.town) == ("丰台区", "新村街道"), top
    # a district sound-alike elsewhere in the line does not overrule the street named
    top = extractor.extract("星分街道这边风台七个人在吵架", "s").top
    assert top is not None and top.district == "大兴区", top


def test_a_long_street_name_with_one_syllable_lost_is_found_anywhere(extractor: AddressExtractor) -> None:
    for text, district, town in [
        ("我家在天海湖阵有言四大段天。", "平谷区", "金海湖镇"),  # 金 lost, 海湖镇 heard right
        ("你好 我是林营区谷北图镇的基林。", "密云区", "古北口镇"),  # 口 heard as 图
    ]:
        top = extractor.extract(text, "s").top
        assert top is not None and (top.district, top.town) == (district, town), (text, top)
        assert top.confidence < 0.8  # a sound-alike, never shown as sure
    assert extractor.extract("我家在天海图阵有言四大段天。", "s").candidates == []  # two syllables lost


def test_loose_matching_leaves_ordinary_speech_alone(extractor: AddressExtractor) -> None:
    for text in [
        "东风汽车的售后服务太差了",
        "我们单位拖欠工资已经三个月了",
        "我想问一下社保卡丢了怎么补办",
        "出租车司机绕路多收了我的钱",
    ]:
        assert extractor.extract(text, "s").candidates == [], text
    top = extractor.extract("通州那边新开的医院挂号太难了", "s").top
    assert top is not None and top.town is None  # 医院 is not 梨园, though the district is named


def test_a_community_misheard_with_its_suffix_resolves_in_the_named_street(extractor: AddressExtractor) -> None:
    heard = "我住在房山七星城街道新城闭四社区楼下的垃圾好几天没人清"  # 房山区星城街道星城第四社区, as heard
    top = extractor.extract(heard, "s").top
    assert top is not None and (top.town, top.community) == ("星城街道", "星城第四社区"), top
    mention = next(m for m in top.mentions if m.level == "community")
    assert mention.kind == "phonetic" and heard[mention.start : mention.end] == mention.text


def test_a_street_heard_whole_is_not_taken_for_its_village_of_the_same_name(extractor: AddressExtractor) -> None:
    for text, town in [
        ("继继是风台曲掌心电这边,功能飞收的部队", "长辛店街道"),  # not its village 长辛店村
        ("朝阳区来广阴箱这边,拉机站臭得不行。", "来广营乡"),  # 箱 is 乡 more than 村
        ("地址是海电区西北望阵,学校门头的红绿灯坏了", "西北旺镇"),
        ("麻烦记一下,闻头勾起摘糖震,楼下烧烤摊天天烙到半夜", "斋堂镇"),  # not 西斋堂村 (起 was 区)
    ]:
        top = extractor.extract(text, "s").top
        assert top is not None and (top.town, top.community) == (town, None), text
    # the village said with its 村, which sounds closer than the town's suffix there, is the village
    top = extractor.extract("你好,我是防山期韩村和正韩村和村的基民", "s").top
    assert top is not None and (top.town, top.community) == ("韩村河镇", "韩村河村")
    # a village elsewhere (马庄村) inside the named town's village as heard is a piece of it
    top = extractor.extract("房山区使楼阵洋服马庄村这边楼下烧烤谈天天漏到半夜", "s").top
    assert top is not None and (top.town, top.community) == ("石楼镇", "杨驸马庄村")


def test_a_community_named_alone_is_found_by_sound_when_its_suffix_was_heard(extractor: AddressExtractor) -> None:
    g = extractor.gazetteer
    for heard, community in [
        ("我家在意打李社区,楼上路水帮我家天花板泡了", "义达里社区"),  # 社区 written right
        ("我住在黄庄社区", "黄庄社区"),  # the exact name, for contrast
        ("喂,我这儿是三合中理设计,燃气有股味儿", "三合中里社区"),  # 社区 heard as 设计
        ("你好,我是梁香鲜的厚石洋分的吉米", "后石羊村"),  # 村 heard as 分
        ("我家在西北望社区,误厌什么都不管", "西北旺社区"),  # 西北望 alone would be 西北旺镇: it is part of the name
        ("喂,我这儿是何以东里第2社区,电梯老是坏", "和义东里第二社区"),  # 第二社区 inside it is no rival
        ("帅府社期这边小区里的充电装一直用户了", "帅府社区"),  # a stem of two written right, 社区 heard as 社期
        ("我家在新华元社区,一颗大收到了", "新华园社区"),  # homophone, 新 written right: not 兴华园社区 (xing)
    ]:
        top = extractor.extract(heard, "s").top
        assert top is not None and top.community == community, (heard, top)
        assert top.town_code is not None and g.communities[top.community_code or ""].town_code == top.town_code
    loose = extractor.extract("我家在意打李社区,楼上路水", "s").top
    assert loose is not None and loose.confidence < 0.8  # a community alone, by sound: never shown as sure
    assert [m.text for m in loose.mentions] == ["意打李社区"]
    for plain in [
        "楼上漏水把我家天花板泡了",
        "我等了十分钟了还没人接",
        "我们村里的路灯坏了",
        "社区医院的医生态度不好",
        "汽车种姓分泌",  # a two-syllable word and a suffix as the phone makes it (分 for 村): not 中心村
        "帅气社期",  # a stem of two not written right, and the suffix as the phone makes it: not 帅府社区
    ]:
        assert extractor.extract(plain, "s").candidates == [], plain


def test_a_line_gets_the_readings_with_its_misheard_place_put_right(extractor: AddressExtractor) -> None:
    hints = PlaceHints(extractor)
    # a district alone (朝阳区 as 朝阳七): its streets that sound like part of the line, in place of that part
    readings = hints.readings_for("朝阳七九零零桥街道这边晚上工地师工作樱特别大")
    assert "朝阳七九酒仙桥街道这边晚上工地师工作樱特别大" in readings and len(readings) <= MAX_READINGS
    # no place at all: places and communities anywhere
    assert "水洼屯村这边有人占指消防通道停车" in hints.readings_for("使挖屯村这边有人占指消防通道停车")
    assert "我家在佛子庄乡楼上路水把我家天花板泡了" in hints.readings_for("我家在福祠中香楼上路水把我家天花板泡了")
    # a line naming its street right, and a line like no place, get none
    assert hints.readings_for("我家在海淀区中关村街道,楼上漏水") == []
    assert hints.readings_for("对不起我打错了") == []


def test_a_place_with_its_suffix_heard_loosely_is_suggested_for_the_audio_to_judge(extractor: AddressExtractor) -> None:
    # Dev lines as Whisper base heard them on the phone: 镇 as 镜 and 陈, 社区 heard right around a misheard stem,
    # 村 as 生 (and 僧: the flat initial for the retroflex). The suffix as heard is no proof of a place, so the names
    # go to the audio as lines to score.
    hints = PlaceHints(extractor)
    for heard, reading in [
        ("我海镜这边路都坏了好几根", "渤海镇这边路都坏了好几根"),
        ("我就在推村陈,有言似大段限", "我就在崔村镇,有言似大段限"),
        ("成艳社区这边一颗大树道了", "诚苑社区这边一颗大树道了"),
        ("你好,我是四和唐生的居民", "你好,我是四合堂村的居民"),
        ("你好,我是死和唐僧的居民", "你好,我是四合堂村的居民"),  # 村 as 僧: seng for sheng, s for sh
        ("今首见折编晚上工地施工造因特别大", "兴寿镇折编晚上工地施工造因特别大"),  # 镇 as 见
    ]:
        readings = hints.readings_for(heard)
        assert reading in readings and len(readings) <= MAX_READINGS, (heard, readings)
    # a stem syllable too far from the name's (多 duo for 窦 dou): not 窦店镇
    assert all("窦店" not in line for line in hints.readings_for("我家再多电镇"))
