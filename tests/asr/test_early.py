"""The early decode's hand-over to the final (threads, no model)."""

from __future__ import annotations

import threading
import time

from asr.early import EarlyDecode
from asr.whisper_decoder import Decoded

RESULT = Decoded(text="我住在海淀区", confidence=0.9, no_speech_prob=0.01, tokens=6)


def test_a_finished_early_decode_is_the_final_of_the_same_utterance() -> None:
    early = EarlyDecode((100, 900))
    early.run(lambda: RESULT)
    assert early.claim((100, 900)) is RESULT


def test_an_early_decode_of_another_stretch_is_not_used() -> None:
    early = EarlyDecode((100, 900))
    early.run(lambda: RESULT)
    assert early.claim((100, 1500)) is None  # the caller went on: the final is longer


def test_a_queued_early_decode_is_dropped_and_never_runs() -> None:
    early = EarlyDecode((100, 900))
    assert early.claim((100, 900)) is None  # the final decodes at once instead of waiting in the queue
    ran: list[bool] = []
    early.run(lambda: ran.append(True) or RESULT)  # type: ignore[func-returns-value]
    assert not ran
    spoken_again = EarlyDecode((100, 900))
    spoken_again.drop()
    spoken_again.run(lambda: ran.append(True) or RESULT)  # type: ignore[func-returns-value]
    assert not ran


def test_the_final_waits_for_an_early_decode_already_running() -> None:
    early = EarlyDecode((100, 900))
    started = threading.Event()

    def slow() -> Decoded:
        started.set()
        time.sleep(0.2)
        return RESULT

    worker = threading.Thread(target=early.run, args=(slow,))
    worker.start()
    started.wait(5)
    assert early.claim((100, 900)) is RESULT
    worker.join()


def test_a_failed_early_decode_leaves_the_final_to_decode_itself() -> None:
    early = EarlyDecode((100, 900))

    def broken() -> Decoded:
        raise RuntimeError("decoder failed")

    early.run(broken)
    assert early.claim((100, 900)) is None


class RunningDecode:
    """An early decode running on its own thread ("decode-thread") until released; `fail`: it then raises."""

    def __init__(self, early: EarlyDecode, fail: bool = False) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.fail = fail
        self.thread = threading.Thread(target=early.run, args=(self._decode,), name="decode-thread")
        self.thread.start()
        self.started.wait(5)

    def _decode(self) -> Decoded:
        self.started.set()
        self.release.wait(5)
        if self.fail:
            raise RuntimeError("decoder failed")
        return RESULT

    def finish(self) -> None:
        self.release.set()
        self.thread.join(5)


def test_a_running_early_decode_finishes_the_final_on_its_own_thread() -> None:
    early = EarlyDecode((100, 900))
    running = RunningDecode(early)
    got: list[tuple[Decoded | None, str]] = []
    assert early.adopt((100, 900), lambda result: got.append((result, threading.current_thread().name)))
    assert got == []  # nothing waits on another thread meanwhile: the decode's thread hands the result over
    running.finish()
    assert got == [(RESULT, "decode-thread")]


def test_only_a_running_decode_of_the_same_stretch_is_adopted() -> None:
    queued = EarlyDecode((100, 900))
    assert not queued.adopt((100, 900), lambda _: None)  # not started: the final decodes itself at once
    done = EarlyDecode((100, 900))
    done.run(lambda: RESULT)
    assert not done.adopt((100, 900), lambda _: None)
    assert done.claim((100, 900)) is RESULT  # the final's own job takes the result without waiting
    other = EarlyDecode((100, 900))
    running = RunningDecode(other)
    assert not other.adopt((100, 1500), lambda _: None)  # the caller went on: a longer utterance closed
    running.finish()


def test_an_adopted_decode_that_fails_hands_over_nothing() -> None:
    early = EarlyDecode((100, 900))
    running = RunningDecode(early, fail=True)
    got: list[Decoded | None] = []
    assert early.adopt((100, 900), got.append)
    running.finish()
    assert got == [None]  # the final then decodes the utterance itself


def test_a_running_decode_the_caller_spoke_past_is_no_longer_wanted() -> None:
    early = EarlyDecode((100, 900))
    seen: list[bool] = []

    def encoder_then_decoder() -> Decoded | None:
        seen.append(early.wanted())
        early.drop()  # the caller speaks again while the encoder runs
        seen.append(early.wanted())
        return RESULT if early.wanted() else None

    early.run(encoder_then_decoder)
    assert seen == [True, False]
    assert early.claim((100, 900)) is None
