"""The ticket draft from caller lines: the shipped catalogue, the category guesses on the labelled lines (held-out
part included), and the fields read out of what the caller says."""

from __future__ import annotations

from pathlib import Path

import pytest

from assist.ticket.catalogue import CatalogueError, load_catalogue
from assist.ticket.draft import Line, callback_number, caller_name, detail, draft
from events.address import AddressCandidate
from tools.ticket_eval import evaluate, load_cases

CASES = Path(__file__).with_name("cases.yaml")
CATALOGUE = load_catalogue()
WANGJING = AddressCandidate(
    district="朝阳区",
    town="望京街道",
    community=None,
    adcode="110105010",
    town_code="110105010",
    level="town",
    confidence=0.9,
    source="gazetteer",
)


def test_the_shipped_catalogue_has_three_levels_and_over_a_hundred_leaves() -> None:
    leaves = CATALOGUE.leaves()
    assert len(leaves) >= 100
    assert all(len(c.path) == 3 and all(c.path) and c.leaf.keywords for c in leaves)
    assert len({c.path[0] for c in leaves}) >= 10


def test_a_broken_catalogue_is_refused_naming_the_entry(tmp_path: Path) -> None:
    bad = tmp_path / "catalogue.yaml"
    bad.write_text(
        "version: 1\ncategories:\n  - name: A\n    children:\n      - name: B\n        children:\n"
        "          - {code: '01.01.01', name: X, keywords: [x], response: 3d, dispatch: town}\n",
        encoding="utf-8",
    )
    with pytest.raises(CatalogueError, match=r"catalogue.yaml: categories\.0\.children\.0\.children\.0\.response"):
        load_catalogue(bad)


@pytest.mark.parametrize(("part", "top1", "top3"), [("dev", 0.95, 0.98), ("holdout", 0.9, 0.95)])
def test_category_guesses_on_labelled_caller_lines(part: str, top1: float, top3: float) -> None:
    report = evaluate(CATALOGUE, [c for c in load_cases(CASES) if c.set == part])
    assert report.cases >= 45
    assert report.top1_accuracy >= top1, [(m.case.text, m.got) for m in report.misses]
    assert report.top3_accuracy >= top3


def test_a_call_fills_category_response_place_dispatch_number_name_and_detail() -> None:
    lines = [
        Line("s1", "喂，你好，我姓王，王先生"),
        Line("s2", "我们小区暖气不热，屋里才十五度"),
        Line("s3", "在五号楼三单元六零二，你们打我电话幺三八，零零幺三，八零零零"),
    ]
    ticket = draft(lines, WANGJING, CATALOGUE)
    assert ticket.category_code == "01.01.01" and ticket.category == "城乡建设 / 供暖 / 暖气不热"
    assert "暖气不热" in ticket.categories[0].words
    assert ticket.response == "24h" and ticket.urgent_words == []
    assert ticket.dispatch_unit == "北京热力集团"
    assert (ticket.district, ticket.town, ticket.town_code) == ("朝阳区", "望京街道", "110105010")
    assert ticket.callback_number == "13800138000"
    assert ticket.caller_name == "王先生"
    assert ticket.detail == "五号楼三单元六零二"
    assert ticket.summary is not None and ticket.summary.startswith("你好，我姓王") and "喂" not in ticket.summary
    assert ticket.segments == 3


def test_an_urgent_word_raises_the_response_and_a_local_matter_goes_to_the_street_office() -> None:
    gas = draft([Line("s1", "楼道里一股煤气味，好像燃气泄漏了")], WANGJING, CATALOGUE)
    assert gas.category_code == "04.03.01" and gas.response == "2h" and "燃气泄漏" in gas.urgent_words
    litter = draft([Line("s1", "楼道里堆满了杂物，消防通道都堵了")], WANGJING, CATALOGUE)
    assert litter.dispatch_unit == "朝阳区望京街道" and litter.response in ("7d", "24h")
    unplaced = draft([Line("s1", "楼道里堆满了杂物")], None, CATALOGUE)
    assert unplaced.dispatch_unit is None and unplaced.district is None


def test_nothing_is_guessed_from_a_line_that_names_no_problem() -> None:
    ticket = draft([Line("s1", "喂，你好，请问是12345吗")], None, CATALOGUE)
    assert ticket.category_code is None and ticket.categories == [] and ticket.response is None
    assert ticket.callback_number is None and ticket.caller_name is None


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("我的电话是13912345678", "13912345678"),
        ("手机号幺三九 幺二三四 五六七八", "13912345678"),
        ("联系电话六二三四五六七八", "62345678"),
        ("先打13800000000，哦不对，是13900000000", "13900000000"),
        ("我家住了十二年了，三号楼", None),
        ("订单号123456789", None),
    ],
)
def test_callback_numbers_in_digits_or_chinese_numerals(text: str, number: str | None) -> None:
    assert callback_number(text) == number


def test_names_and_details() -> None:
    assert caller_name("免贵姓李，李女士") == "李女士"
    assert caller_name("我叫张小明，住在海淀") == "张小明"
    assert caller_name("我姓") is None
    assert detail("住6号院3号楼1201室") == "6号院3号楼1201室"
    assert detail("我住三楼") is None
