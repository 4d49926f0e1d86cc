"""The lines of the address speech set: what a 12345 caller says, with the place each line names.

Written from templates over the gazetteer with a fixed seed, so the set is the same on every machine. Every current
street/town is named at least once; every district many times. Forms: district + street/town (+ community), a
street/town alone, a street's stem with 这边/那边, a community with its street, a community alone (only names that
are unique in Beijing), colloquial areas (回龙观, 望京 ...), and lines that name no place.

Held out: every line about a street/town whose code hashes into the held-out share, and the same share of the
colloquial and no-place lines. Tuning looks only at the dev lines, so the held-out streets are names the matcher
was never tuned on.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Literal

from assist.address.gazetteer import Community, Gazetteer, Town

SetName = Literal["dev", "holdout"]
HOLDOUT_PERCENT = 30
SEED = 12345

PROBLEMS = (
    "楼下的垃圾好几天没人清了",
    "暖气一点都不热",
    "晚上工地施工噪音特别大",
    "路灯坏了好几个",
    "有人占着消防通道停车",
    "小区里的充电桩一直用不了",
    "楼上漏水把我家天花板泡了",
    "饭馆的油烟太大了",
    "马路上的井盖丢了很危险",
    "自来水发黄不能喝",
    "停电一整天了",
    "物业什么都不管",
    "电梯老是坏",
    "一棵大树倒了挡着路",
    "下水道堵了往外冒水",
    "有人私搭乱建",
    "公交站的棚子被风刮坏了",
    "小区门口天天有人摆摊",
    "燃气有股味儿",
    "健身房老板跑路了卡里的钱退不了",
)
ENDINGS = ("", "，你们能不能派人来看看", "，已经好几天了", "，麻烦你们管一管", "，这个事儿找谁啊")
# Lines about something else; many carry words that look like parts of place names (新华, 东风, 光明 ...).
NO_PLACE = (
    "我想问一下社保卡丢了怎么补办",
    "我要投诉一个快递员态度特别不好",
    "请问预付卡退款应该找哪个部门",
    "我想咨询一下公积金提取需要什么手续",
    "我家老人一个人在家，想问问有没有上门服务",
    "我上个月打过电话反映的事儿到现在还没人回复",
    "我的房产证上名字写错了怎么改",
    "孩子上学的事儿想咨询一下入学政策",
    "我在网上买的东西是假货，商家不给退",
    "出租车司机绕路多收了我的钱",
    "我想查一下我的医保报销进度",
    "我要表扬一下你们的工作人员，服务特别好",
    "请问新的养老政策什么时候开始执行",
    "我的驾驶证快到期了，在哪儿可以换",
    "我想问问办居住证需要带什么材料",
    "光明正大地说，这个收费就是不合理",
    "我在东风快递寄的包裹丢了",
    "新华书店的会员卡退不了钱",
    "我的手机号被人冒用注册了",
    "我想反映一下电信套餐乱扣费的问题",
    "有个培训机构收了学费就不上课了",
    "我要举报一个诈骗电话",
    "请问失业金怎么领",
    "我想咨询一下残疾证怎么办理",
    "我昨天打车把包落在车上了",
    "麻烦问一下人才引进的政策",
    "我要投诉外卖平台乱收配送费",
    "我想问问电动车上牌的事儿",
    "家里的燃气卡充不进去钱",
    "对不起我打错了",
    "喂，你好，能听见吗",
    "我想问一下今年的供暖什么时候开始",
    "我儿子在学校被人欺负了想反映一下",
    "我家的宽带老是断网",
    "想问问公租房怎么申请",
    "我想投诉一个医院的挂号黄牛",
    "请问个税怎么退",
    "我的快递被人冒领了",
    "我想咨询一下离婚的手续",
    "单位拖欠我三个月的工资",
)
COLLOQUIAL = (
    "回龙观",
    "天通苑",
    "望京",
    "国贸",
    "中关村",
    "五道口",
    "西二旗",
    "公主坟",
    "西单",
    "西直门",
    "马连道",
    "后海",
    "王府井",
    "南锣鼓巷",
    "永定门",
    "崇文门",
    "三元桥",
    "鸟巢",
    "万柳",
    "雁栖湖",
)


@dataclass(frozen=True)
class SpeechCase:
    id: str
    text: str
    tag: str  # full | district_town | town | stem | community_town | community | colloquial | none
    district: str | None
    towns: tuple[str, ...] | None  # acceptable streets/towns (None: not scored)
    community: str | None  # scored when not None
    set: SetName


def _holdout(key: str) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100 < HOLDOUT_PERCENT


def _spoken_town(town: Town, rng: random.Random) -> str:
    """How a caller names a street/town: the official name, or for a 街道 often the stem and 这边."""
    stem = next((a for a, kind in town.aliases if kind == "stem"), None)
    if town.kind == "街道" and stem and len(stem) >= 2 and rng.random() < 0.3:
        return stem + rng.choice(("这边", "那边", "那块儿"))
    return town.name


def _line(place: str, rng: random.Random) -> str:
    problem = rng.choice(PROBLEMS)
    ending = rng.choice(ENDINGS)
    template = rng.choice(
        (
            "你好，我是{p}的居民，{q}{e}。",
            "我住在{p}，{q}{e}。",
            "喂，我这儿是{p}，{q}{e}。",
            "我要反映一下，{p}{q}{e}。",
            "{p}{q}{e}。",
            "我家在{p}，{q}{e}。",
        )
    )
    if template.startswith("{p}") and not place.endswith(("这边", "那边", "那块儿")):
        place += "这边"
    return template.format(p=place, q=problem, e=ending)


def _unique_communities(g: Gazetteer) -> dict[str, list[Community]]:
    """Communities by town, keeping only names that no other community in Beijing has."""
    counts: dict[str, int] = {}
    for c in g.communities.values():
        counts[c.name] = counts.get(c.name, 0) + 1
    out: dict[str, list[Community]] = {}
    for c in g.communities.values():
        if counts[c.name] == 1 and len(c.name) >= 4:
            out.setdefault(c.town_code, []).append(c)
    return out


def build_cases(g: Gazetteer, seed: int = SEED) -> list[SpeechCase]:
    rng = random.Random(seed)
    communities = _unique_communities(g)
    towns = sorted((t for t in g.towns.values() if t.current), key=lambda t: t.code)
    cases: list[SpeechCase] = []

    def add(text: str, tag: str, town: Town | None, community: Community | None, key: str) -> None:
        district = g.districts[town.district_code].name if town else None
        cases.append(
            SpeechCase(
                id=f"{tag}-{len(cases):03d}",
                text=text,
                tag=tag,
                district=district,
                towns=(town.name,) if town else None,
                community=community.name if community else None,
                set="holdout" if _holdout(key) else "dev",
            )
        )

    for town in towns:
        district = g.districts[town.district_code]
        choices = ["district_town", "town", "full", "community_town", "community"]
        weights = [4, 2, 2, 1, 1] if town.code in communities else [5, 3, 0, 0, 0]
        tag = rng.choices(choices, weights)[0]
        community = rng.choice(communities[town.code]) if tag in ("full", "community_town", "community") else None
        if tag == "district_town":
            place = district.name + _spoken_town(town, rng)
        elif tag == "town":
            place = _spoken_town(town, rng)
        elif tag == "full":
            assert community is not None
            place = district.name + town.name + community.name
        elif tag == "community_town":
            assert community is not None
            place = town.name + "的" + community.name
        else:
            assert community is not None
            place = community.name
        add(_line(place, rng), tag, town, community, town.code)
    for name in COLLOQUIAL:
        entry = next(c for c in g.colloquial if c.name == name)
        main = g.towns[entry.town_codes[0]]
        text = _line(name + rng.choice(("这边", "那边", "附近")), rng)
        cases.append(
            SpeechCase(
                id=f"colloquial-{len(cases):03d}",
                text=text,
                tag="colloquial",
                district=g.districts[main.district_code].name,
                towns=tuple(g.towns[c].name for c in entry.town_codes),
                community=None,
                set="holdout" if _holdout("colloquial:" + name) else "dev",
            )
        )
    for text in NO_PLACE:
        cases.append(
            SpeechCase(
                id=f"none-{len(cases):03d}",
                text=text + "。",
                tag="none",
                district=None,
                towns=None,
                community=None,
                set="holdout" if _holdout("none:" + text) else "dev",
            )
        )
    return cases
