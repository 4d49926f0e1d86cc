"""The address speech set: its lines cover Beijing, its held-out part never shares a street with dev, and a
clip sounds like a phone line."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from assist.address.gazetteer import Gazetteer
from ivr_flows.prompt_texts import PromptError
from tools.address_speech.audio import PIPELINE, clip_name, degrade, read_wav, speaker
from tools.address_speech.cases_file import read_cases
from tools.address_speech.cli import CASES_FILE, RETEST_CASES_FILE
from tools.address_speech.confusions import count_confusions
from tools.address_speech.sentences import RETEST, SpeechCase, build_cases
from tools.prompts import TTSKIT_SPEAKERS, TtskitEngine


def test_committed_lines_are_what_the_generator_writes(gazetteer: Gazetteer) -> None:
    assert read_cases(CASES_FILE) == build_cases(gazetteer)
    assert read_cases(RETEST_CASES_FILE) == build_cases(gazetteer, RETEST)


def test_the_retest_set_says_its_places_in_new_sentences_and_holds_out_the_same_streets() -> None:
    original, retest = read_cases(CASES_FILE), read_cases(RETEST_CASES_FILE)
    assert not {c.text for c in original} & {c.text for c in retest}
    assert not {c.id for c in original} & {c.id for c in retest}
    dev_streets = {c.towns[0] for c in original if c.set == "dev" and c.towns and c.tag != "colloquial"}
    held_out_again = {c.towns[0] for c in retest if c.set == "holdout" and c.towns and c.tag != "colloquial"}
    assert held_out_again and not held_out_again & dev_streets
    assert sum(c.district is None for c in retest) == 40


def test_lines_cover_the_districts_and_most_streets(gazetteer: Gazetteer) -> None:
    cases = read_cases(CASES_FILE)
    placed = [c for c in cases if c.district is not None]
    assert len(placed) >= 300
    assert {c.district for c in placed} == {d.name for d in gazetteer.districts.values()}
    assert len({c.towns[0] for c in placed if c.towns and c.tag != "colloquial"}) >= 200
    assert {"colloquial", "community", "none", "town", "full"} <= {c.tag for c in cases}
    assert all(name in c.text for c in cases if c.community for name in [c.community])


def test_held_out_streets_never_occur_in_dev() -> None:
    cases = read_cases(CASES_FILE)
    streets = {
        s: {c.towns[0] for c in cases if c.set == s and c.towns and c.tag != "colloquial"} for s in ("dev", "holdout")
    }
    assert streets["holdout"] and not streets["dev"] & streets["holdout"]
    held = sum(c.set == "holdout" for c in cases) / len(cases)
    assert 0.2 < held < 0.4


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is installed by setup")
def test_a_clip_is_narrowband_telephone_audio(tmp_path: Path) -> None:
    raw = tmp_path / "raw.wav"
    # Wideband input: 0.2 s of silence, 1.5 s of a 100 Hz + 1 kHz mix, 0.2 s of silence, 24 kHz. Made without
    # dither (-D, -R): with it, the input and so the clip differ from run to run.
    subprocess.run(
        [
            *("sox", "-D", "-R", "-n", "-r", "24000", "-b", "16", str(raw)),
            *("synth", "1.5", "sine", "100", "sine", "1000", "channels", "1", "pad", "0.2", "0.2"),
        ],
        check=True,
    )
    out = tmp_path / "line.wav"
    degrade(raw, out, "case-1")
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
    audio = read_wav(out)
    spectrum = np.abs(np.fft.rfft(audio))
    freqs = np.fft.rfftfreq(len(audio), 1 / 8000)
    assert 3 * spectrum[freqs < 250].sum() < spectrum[(freqs > 300) & (freqs < 3400)].sum()  # only the band is kept
    assert 1.2 < len(audio) / 8000 < 2.0  # tempo changed a little, silence trimmed
    peak = float(np.max(np.abs(audio)))
    assert 0.09 < peak < 0.8  # a level between -20 and -3 dBFS, plus noise
    degrade(raw, tmp_path / "again.wav", "case-1")
    assert np.array_equal(read_wav(tmp_path / "again.wav"), audio)  # the same line gives the same clip


def test_confusions_count_what_was_written_for_a_named_place_s_syllables() -> None:
    case = SpeechCase("x-1", "我家在怀柔区庙城镇，物业不管。", "district_town", "怀柔区", ("庙城镇",), None, "dev")
    other = SpeechCase("x-2", "喂，我这儿是怀柔区，物业不管。", "district_town", "怀柔区", None, None, "dev")
    found = count_confusions([(case, ["我家在怀有区庙城镇,", "物业不管。"]), (other, ["喂,我这儿是怀有区,我也不管。"])])
    assert [(c.char, c.heard, c.count) for c in found] == [("柔", "you", 2)]  # 物业 -> 我也: not a place
    assert found[0].line() == "柔 rou -> you: 2 (similarity 0.60)"


def test_other_voices_say_each_line_as_one_speaker_drawn_from_its_id_into_a_clip_of_its_own() -> None:
    cases = read_cases(RETEST_CASES_FILE)
    drawn = [speaker(c, "ttskit") for c in cases]
    assert set(drawn) <= set(TTSKIT_SPEAKERS)
    assert len(set(drawn)) == len(TTSKIT_SPEAKERS)  # 403 lines reach every speaker
    assert max(drawn.count(s) for s in TTSKIT_SPEAKERS) < 3 * len(cases) / len(TTSKIT_SPEAKERS)
    assert drawn == [speaker(c, "ttskit") for c in read_cases(RETEST_CASES_FILE)]  # a rebuild: the same speakers
    names = {clip_name(c) for c in cases}
    other = {clip_name(c, "ttskit") for c in cases}
    assert len(names) == len(other) == len(cases) and not names & other
    # the tuned voice's clips keep the names their cached transcripts are filed under
    first = cases[0]
    assert (
        clip_name(first)
        == f"{first.id}-{hashlib.sha256(f'{PIPELINE}|{first.text}|{first.id}'.encode()).hexdigest()[:10]}.wav"
    )
    with pytest.raises(ValueError, match="unknown voice"):
        speaker(first, "espeak")


def test_a_speaker_whose_lines_the_recogniser_cannot_read_is_refused(tmp_path: Path) -> None:
    engine = TtskitEngine(tmp_path)
    assert engine.install_steps({"Aicheng", "biaobei"})[1] == ["--no-deps", "ttskit==0.3.8"]
    with pytest.raises(PromptError, match="unknown speaker Xiaowei"):
        engine.install_steps({"Aicheng", "Xiaowei"})  # ttskit has it, but Whisper reads 98 % of its characters wrong
