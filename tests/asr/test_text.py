"""Whisper output clean-up (fast)."""

from __future__ import annotations

from asr.whisper_decoder import collapse_repetitions


def test_looping_tails_collapse() -> None:
    assert collapse_repetitions("各位观观观观观观观观观观观观") == "各位观"
    assert collapse_repetitions("这个单单,和单单,和单单,和单单,和单单,和") == "这个单单,和"
    assert collapse_repetitions("作为一个男人" + "对对对对" * 10) == "作为一个男人对"


def test_ordinary_text_is_kept() -> None:
    for text in ("你好你好", "对对对", "谢谢", "广州市房地产中介协会分析", "哈哈哈哈"):
        assert collapse_repetitions(text) == text
