"""Whisper output clean-up (fast)."""

from __future__ import annotations

from asr.whisper_decoder import collapse_repetitions, is_loop, stopped_early


def test_looping_tails_collapse() -> None:
    assert collapse_repetitions("各位观观观观观观观观观观观观") == "各位观"
    assert collapse_repetitions("这个单单,和单单,和单单,和单单,和单单,和") == "这个单单,和"
    assert collapse_repetitions("作为一个男人" + "对对对对" * 10) == "作为一个男人对"


def test_ordinary_text_is_kept() -> None:
    for text in ("你好你好", "对对对", "谢谢", "广州市房地产中介协会分析", "哈哈哈哈"):
        assert collapse_repetitions(text) == text


def test_an_output_that_was_mostly_a_loop_is_told_apart() -> None:
    looping = "《" * 43
    assert is_loop(looping, collapse_repetitions(looping))
    tail = "我家楼下的路灯坏了" + "坏了" * 20
    assert is_loop(tail, collapse_repetitions(tail))
    for text in ("我家楼下的路灯坏了坏了坏了", "对对对", "谢谢谢谢"):
        assert not is_loop(text, collapse_repetitions(text)), text


def test_a_reading_far_shorter_than_its_speech_stopped_early() -> None:
    assert stopped_early("我要反应一下。", 6.32, 0.2)  # 6 characters for 5.9 s of speech
    assert not stopped_early("我要反映一下,星月露第4社区贩馆的由烟拍大令麻烦你们管一管", 6.32, 0.2)
    assert not stopped_early("喂?", 1.5, 0.2)  # too short to tell
    assert not stopped_early("对,就是这个小区。", 3.4, 0.2)
