"""Where a reading's words fall in its audio (asr.coverage): real Whisper base on a real address line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from asr.audio import ASR_RATE, FloatArray, read_wav_16k
from asr.coverage import token_starts, too_many_to_leave_out, uncovered_s
from asr.faster_whisper_engine import FasterWhisperEngine
from asr.telephone import telephone_path
from asr.whisper_decoder import _UNCOVERED_S, WhisperDecoder

CLIP = Path(__file__).parent / "data" / "address-district_town-100.wav"  # 丰台区王佐镇这边有人占着消防通道停车…
PAD_S = 0.2


def _utterance() -> FloatArray:
    """The clip through the telephone path, with the endpointer's speech pad before it and 0.2 s after."""
    return np.concatenate(
        [np.zeros(int(PAD_S * ASR_RATE), np.float32), telephone_path(read_wav_16k(CLIP)), np.zeros(3200, np.float32)]
    )


def test_a_reading_that_covers_its_speech_leaves_no_long_stretch() -> None:
    assert uncovered_s([0.0, 0.3, 0.7, 1.1, 1.6], int(2.0 * ASR_RATE), PAD_S) == pytest.approx(0.9)


def test_a_skipped_head_shows_as_a_jump_and_an_early_end_as_speech_after_the_last_word() -> None:
    assert uncovered_s([0.0, 0.06, 2.52, 2.7, 2.9, 3.2], int(3.6 * ASR_RATE), PAD_S) == pytest.approx(2.64)
    assert uncovered_s([0.0, 0.82, 1.78, 1.9, 2.1], int(2.5 * ASR_RATE), PAD_S) == pytest.approx(1.78)
    assert uncovered_s([0.0, 0.4, 0.8, 3.1], int(6.6 * ASR_RATE), PAD_S) == pytest.approx(5.6)
    assert uncovered_s([], int(3.0 * ASR_RATE), PAD_S) == pytest.approx(2.6)


def test_a_reading_with_too_many_characters_for_its_speech_less_a_clause_cannot_have_left_one_out() -> None:
    assert too_many_to_leave_out(25, 4.3, _UNCOVERED_S)  # the rest of the speech: 2.8 s, 8.9 characters a second
    assert not too_many_to_leave_out(17, 4.3, _UNCOVERED_S)  # 6.1 a second: a fast caller might
    assert not too_many_to_leave_out(0, 1.0, _UNCOVERED_S)


@pytest.mark.slow
def test_the_words_of_a_clause_left_out_leave_its_speech_uncovered(whisper_engine: FasterWhisperEngine) -> None:
    audio = _utterance()
    decoder = whisper_engine.decoder
    prompt = decoder.prompt_tokens()
    encoded = decoder.encode(audio)
    reading = decoder.decode(audio, prompt, encoded=encoded).text
    third = len(reading) // 3

    def left_out(text: str) -> float:
        return uncovered_s(
            token_starts(decoder.model, encoded, prompt, decoder.tokenizer.encode(text), len(audio)), len(audio), PAD_S
        )

    assert left_out(reading) < _UNCOVERED_S, reading
    assert left_out(reading[third:]) > _UNCOVERED_S, reading[third:]  # its first third skipped
    assert left_out(reading[: 2 * third]) > _UNCOVERED_S, reading[: 2 * third]  # the line ended a third early


@pytest.mark.slow
def test_with_the_check_turned_off_a_reading_that_left_a_clause_out_stands(whisper_engine: FasterWhisperEngine) -> None:
    audio = _utterance()
    decoder = whisper_engine.decoder
    prompt = decoder.prompt_tokens()
    whole = decoder.decode(audio, prompt)
    cut = replace(whole, text=whole.text[len(whole.text) // 3 :])  # its first third skipped
    assert len(decoder.reread_if_uncovered(audio, prompt, cut).text) > len(cut.text)
    off = WhisperDecoder(decoder.model, decoder.settings.model_copy(update={"reread_uncovered": False}))
    assert off.reread_if_uncovered(audio, prompt, cut) is cut
    assert off.uncovered_retries == 0


@pytest.mark.slow
def test_only_a_reading_too_short_for_its_speech_is_aligned(whisper_engine: FasterWhisperEngine) -> None:
    audio = _utterance()
    decoder = WhisperDecoder(whisper_engine.decoder.model, whisper_engine.decoder.settings)
    prompt = decoder.prompt_tokens()
    whole = decoder.decode(audio, prompt)
    assert decoder.reread_if_uncovered(audio, prompt, whole) is whole
    assert decoder.coverage_checks == 0, whole.text  # 25 characters in 4.3 s of speech: nothing left out
    cut = replace(whole, text=whole.text[len(whole.text) // 3 :])
    assert len(decoder.reread_if_uncovered(audio, prompt, cut).text) > len(cut.text)
    assert (decoder.coverage_checks, decoder.uncovered_retries) == (1, 1)
