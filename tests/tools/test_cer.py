"""CER normalisation and scoring (fast)."""

from __future__ import annotations

import pytest

from tools.asr_eval.cer import cer, corpus_cer, edit_distance, normalize, number_to_hanzi


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("開放時間早上9點至下午5點。", "开放时间早上九点至下午五点"),  # traditional + digits + punctuation
        ("幺三五八幺八八七五七", "一三五八一八八七五七"),  # 幺 = 一
        ("13582888188", "一三五八二八八八一八八"),  # phone numbers digit by digit
        ("拨打12345热线", "拨打一二三四五热线"),
        ("2019年", "二零一九年"),  # years digit by digit
        ("50个", "五十个"),
        ("205路", "二百零五路"),
        ("10号线、15号", "十号线十五号"),
        ("110", "一百一十"),
        ("1005", "一千零五"),
        ("3.5公里", "三点五公里"),
        ("010", "零一零"),
        ("\uff11\uff12", "十二"),  # full-width digits
        ("Hello, 世界\uff01 \u3007", "hello世界零"),  # full-width "!" and the ideographic zero
        ("  好\uff0c  的 \uff1f", "好的"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_number_reading() -> None:
    assert number_to_hanzi("20") == "二十"
    assert number_to_hanzi("101") == "一百零一"
    assert number_to_hanzi("2008", "年") == "二零零八"
    assert number_to_hanzi("2008") == "二千零八"


def test_edit_distance() -> None:
    assert edit_distance("", "") == 0
    assert edit_distance("abc", "") == 3
    assert edit_distance("", "ab") == 2
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("今天天气好", "今天天汽很好") == 2


def test_cer_ignores_formatting_differences() -> None:
    assert cer("开放时间早上9点至下午5点。", "開放時間\uff0c早上九點至下午五點") == 0.0
    assert cer("各位观众晚上好", "各位观众玩笑好") == pytest.approx(2 / 7)


def test_corpus_cer_sums_over_the_set() -> None:
    # 1 error in 2 chars and 0 errors in 8 chars: 1/10, not the mean of 0.5 and 0.
    result = corpus_cer([("你好", "你们"), ("一二三四五六七八", "12345678")])
    assert (result.errors, result.ref_chars, result.clips) == (1, 10, 2)
    assert result.cer == pytest.approx(0.1)
    assert corpus_cer([]).cer == 0.0
