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


# The retest set: the same places in sentences written after the extractor was tuned (other templates, problems,
# endings, lines naming no place; another seed). It tells whether the figures hold for phrasing the matcher was
# never tuned on: its held-out lines are never looked at.
RETEST_PROBLEMS = (
    "共享单车堆在路口没人管",
    "楼道里堆满了杂物",
    "路面塌了一个大坑",
    "有人遛狗不拴绳",
    "小广告贴得到处都是",
    "垃圾站臭得不行",
    "路边违章停车把路都堵死了",
    "有工厂往河里排污水",
    "楼下烧烤摊天天闹到半夜",
    "地下室住了好多人",
    "学校门口的红绿灯坏了",
    "公园里的健身器材坏了",
    "水管爆了水流了一地",
    "供暖费收得不对",
    "树枝压着电线了",
    "有人在绿地里种菜",
    "装修的天天一大早就砸墙",
    "无障碍通道被锁上了",
    "小区的门禁坏了谁都能进",
    "路口有个井盖松了",
)
RETEST_ENDINGS = ("", "，谢谢", "，希望尽快处理", "，帮忙协调一下", "，我都打了好几次电话了")
RETEST_TEMPLATES = (
    "地址是{p}，{q}{e}。",
    "就在{p}，{q}{e}。",
    "你好，是这样的，我们{p}{q}{e}。",
    "我想反映个事儿，{p}{q}{e}。",
    "师傅您好，我在{p}住，{q}{e}。",
    "我们小区在{p}，{q}{e}。",
    "{p}，{q}{e}。",
    "麻烦记一下，{p}，{q}{e}。",
)
# Many carry a word that is also part of a place's name (长城, 和平, 光明, 幸福, 胜利, 社区 ...).
RETEST_NO_PLACE = (
    "我想问一下长城宽带怎么退订",
    "和平精英的充值能退吗",
    "光大银行的理财亏了找谁",
    "建设银行的房贷利率能不能调",
    "我想问问长安汽车召回的事儿",
    "红星美凯龙买的沙发有质量问题",
    "我在永辉超市买的肉变质了",
    "小米手机的售后不给修",
    "中国移动的流量包乱扣费",
    "我想咨询一下出国留学要办什么公证",
    "美团上订的酒店不给退",
    "我家孩子的疫苗本丢了怎么补",
    "想问一下新能源车的补贴怎么领",
    "我要投诉一个黑车司机",
    "我的养老金这个月没到账",
    "请问护照怎么加急办理",
    "我想查一下我的社保缴了多少年",
    "邻居家的狗天天叫，有什么办法吗",
    "开发商延期交房了，我们怎么维权",
    "我想咨询一下劳动仲裁怎么申请",
    "我想问问结婚登记要不要预约",
    "请问老年卡怎么办",
    "我在网上借了钱，利息高得离谱",
    "我想问问新生儿怎么上户口",
    "你们这个电话怎么老是占线",
    "我刚才的电话断了，接着说",
    "我想表扬一下社区医院的大夫",
    "那个，嗯，我想想怎么说",
    "胜利油田的退休工资怎么领",
    "幸福保险的理赔一直不给",
    "我想问问交通罚款在哪儿交",
    "我的信用卡被人盗刷了",
    "有人冒充公安给我打电话",
    "请问办营业执照需要什么材料",
    "我想咨询一下退役军人的优待政策",
    "东方航空的航班取消了不给退票",
    "青年旅社的押金不退",
    "我想问问养犬登记的规定",
    "光明乳业的牛奶喝出了异物",
    "我想问一下公积金贷款的额度",
)


@dataclass(frozen=True)
class Phrasing:
    """How the lines of one set are written: the sentences around the place, and the lines naming none."""

    seed: int
    id_prefix: str
    problems: tuple[str, ...]
    endings: tuple[str, ...]
    templates: tuple[str, ...]
    colloquial_tails: tuple[str, ...]
    no_place: tuple[str, ...]
    # A place ending in one of these is not given 这边 when a template opens with it.
    place_tails: tuple[str, ...] = ("这边", "那边", "那块儿")


ORIGINAL = Phrasing(
    seed=SEED,
    id_prefix="",
    problems=PROBLEMS,
    endings=ENDINGS,
    templates=(
        "你好，我是{p}的居民，{q}{e}。",
        "我住在{p}，{q}{e}。",
        "喂，我这儿是{p}，{q}{e}。",
        "我要反映一下，{p}{q}{e}。",
        "{p}{q}{e}。",
        "我家在{p}，{q}{e}。",
    ),
    colloquial_tails=("这边", "那边", "附近"),
    no_place=NO_PLACE,
)
RETEST = Phrasing(
    seed=20261207,
    id_prefix="retest-",
    problems=RETEST_PROBLEMS,
    endings=RETEST_ENDINGS,
    templates=RETEST_TEMPLATES,
    colloquial_tails=("附近", "这块儿", "那一片"),
    no_place=RETEST_NO_PLACE,
    place_tails=("这边", "那边", "那块儿", "附近", "这块儿", "那一片"),
)
PHRASINGS = {"original": ORIGINAL, "retest": RETEST}


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


def _line(place: str, rng: random.Random, phrasing: Phrasing) -> str:
    problem = rng.choice(phrasing.problems)
    ending = rng.choice(phrasing.endings)
    template = rng.choice(phrasing.templates)
    if template.startswith("{p}") and not place.endswith(phrasing.place_tails):
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


def build_cases(g: Gazetteer, phrasing: Phrasing = ORIGINAL) -> list[SpeechCase]:
    rng = random.Random(phrasing.seed)
    communities = _unique_communities(g)
    towns = sorted((t for t in g.towns.values() if t.current), key=lambda t: t.code)
    cases: list[SpeechCase] = []

    def add(text: str, tag: str, town: Town | None, community: Community | None, key: str) -> None:
        district = g.districts[town.district_code].name if town else None
        cases.append(
            SpeechCase(
                id=f"{phrasing.id_prefix}{tag}-{len(cases):03d}",
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
        add(_line(place, rng, phrasing), tag, town, community, town.code)
    for name in COLLOQUIAL:
        entry = next(c for c in g.colloquial if c.name == name)
        main = g.towns[entry.town_codes[0]]
        text = _line(name + rng.choice(phrasing.colloquial_tails), rng, phrasing)
        cases.append(
            SpeechCase(
                id=f"{phrasing.id_prefix}colloquial-{len(cases):03d}",
                text=text,
                tag="colloquial",
                district=g.districts[main.district_code].name,
                towns=tuple(g.towns[c].name for c in entry.town_codes),
                community=None,
                set="holdout" if _holdout("colloquial:" + name) else "dev",
            )
        )
    for text in phrasing.no_place:
        cases.append(
            SpeechCase(
                id=f"{phrasing.id_prefix}none-{len(cases):03d}",
                text=text + "。",
                tag="none",
                district=None,
                towns=None,
                community=None,
                set="holdout" if _holdout("none:" + text) else "dev",
            )
        )
    return cases
