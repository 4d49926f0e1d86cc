"""Prompt audio (ivr_flows/prompts): the committed files match the texts, are telephony format and sound like
speech; the build is idempotent (tested with a fake engine: no TTS needed)."""

from __future__ import annotations

import math
import shutil
import struct
import sys
import unicodedata
import wave
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tools.prompts import (
    DEFAULT_OUT,
    DEFAULT_TEXTS,
    Echo,
    PromptCatalog,
    PromptError,
    SynthJob,
    VenvEngine,
    build_prompts,
    load_catalog,
    load_manifest,
    prompt_path,
    prompt_status,
    prompts_group,
    sha256_file,
    telephony_wav,
)

CATALOG = load_catalog(DEFAULT_TEXTS)
ITEMS = CATALOG.items()
IN_HOUSE = ["fr", "de", "ru", "es", "ar", "ja", "ko"]
ALL_LANGS = ["zh", "en", *IN_HOUSE]
needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")


def _samples(path: Path) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        params = wav.getparams()
        data = np.frombuffer(wav.readframes(params.nframes), dtype="<i2").astype(np.float64) / 32768.0
    return params, data


def _speech_units(text: str) -> int:
    """Roughly the phonemes in a text: Latin/Cyrillic/Arabic letters count 1, a hanzi, kana or hangul 3."""
    units = 0
    for ch in text:
        name = unicodedata.name(ch, "")
        if ch.isdigit():
            units += 2
        elif any(kind in name for kind in ("CJK UNIFIED", "HIRAGANA", "KATAKANA", "HANGUL SYLLABLE")):
            units += 3
        elif unicodedata.category(ch) in ("Lu", "Ll", "Lo"):
            units += 1
    return units


# ---------------------------------------------------------------------------------------------------------------
# The catalog


def test_catalog_has_every_prompt_the_flows_need() -> None:
    prompts = CATALOG.prompts
    for name in ("welcome", "language_menu", "invalid", "no_input", "service_menu", "interpreter_connecting"):
        assert {"zh", "en"} <= set(prompts[name]), name
    for name in ("please_hold", "operator_unavailable", "callback_recorded", "transfer_failed", "goodbye"):
        assert set(prompts[name]) == set(ALL_LANGS), name
    for lang in IN_HOUSE:  # each in-house language announced in its own language, and in English
        assert set(prompts[f"lang_{lang}"]) == {lang, "en"}
    for n in range(1, CATALOG.numbers.max + 1):
        assert set(prompts[f"num_{n}"]) == {"zh", "en"}
    assert "幺二三四五" in prompts["welcome"]["zh"]
    assert not any(ch.isascii() and ch.isalpha() for ch in "".join(t["zh"] for t in prompts.values() if "zh" in t))
    assert set(CATALOG.engines) == set(ALL_LANGS)


def test_sequences_expand_to_existing_prompts() -> None:
    seq = CATALOG.sequence
    assert seq("queue_position", "zh", 0) == ["queue_next"]
    assert seq("queue_position", "zh", 1) == ["queue_ahead_intro", "num_1", "queue_ahead_outro"]
    assert seq("queue_position", "zh", 3) == ["queue_ahead_intro", "num_3", "queue_ahead_outro"]
    assert seq("queue_position", "zh", 20) == ["queue_ahead_intro", "num_20", "queue_ahead_outro"]
    assert seq("queue_position", "zh", 21) == ["queue_ahead_many"]
    assert seq("queue_position", "en", 1) == ["queue_ahead_one"]
    assert seq("expected_wait", "en", 1) == ["wait_intro", "num_1", "wait_minute"]
    assert seq("expected_wait", "en", 7) == ["wait_intro", "num_7", "wait_minutes"]
    assert seq("expected_wait", "zh", 45) == ["wait_long"]
    with pytest.raises(KeyError):
        seq("queue_position", "fr", 2)
    for name, per_lang in CATALOG.sequences.items():
        for lang in per_lang:
            for n in range(0, 30):
                for prompt in seq(name, lang, n):
                    assert prompt_path(DEFAULT_OUT, lang, prompt).exists(), (name, lang, n, prompt)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"engines": {}, "prompts": {"a": {"zh": "你好"}}}, "no engine for language 'zh'"),
        ({"engines": {"zh": {"engine": "x", "voice": "v"}}, "prompts": {"Bad-Name": {"zh": "你好"}}}, "names are"),
        ({"engines": {"zh": {"engine": "x", "voice": "v"}}, "prompts": {"a": {"zh": " "}}}, "empty text"),
        (
            {
                "engines": {"zh": {"engine": "x", "voice": "v"}},
                "prompts": {"a": {"zh": "你好"}},
                "sequences": {"s": {"zh": {"other": ["a", "num:{n}"]}}},
            },
            "prompt 'num_1' has no 'zh' text",
        ),
    ],
)
def test_a_bad_catalog_is_refused(tmp_path: Path, data: dict[str, object], message: str) -> None:
    import yaml

    path = tmp_path / "texts.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(PromptError, match=message):
        load_catalog(path)


# ---------------------------------------------------------------------------------------------------------------
# The committed audio


@pytest.mark.parametrize("item", ITEMS, ids=[f"{i.lang}/{i.name}" for i in ITEMS])
def test_prompt_file_is_telephony_speech(item: object) -> None:
    from tools.prompts import PromptText

    assert isinstance(item, PromptText)
    path = prompt_path(DEFAULT_OUT, item.lang, item.name)
    assert path.exists(), f"{path} missing: run `hotline-tools prompts build`"
    params, x = _samples(path)
    assert (params.framerate, params.nchannels, params.sampwidth, params.comptype) == (8000, 1, 2, "NONE")
    duration = params.nframes / params.framerate
    rms = math.sqrt(float(np.mean(x**2)))
    peak = float(np.max(np.abs(x)))
    assert 20 * math.log10(rms) > -32, f"too quiet ({20 * math.log10(rms):.1f} dBFS RMS)"
    assert -4.0 < 20 * math.log10(peak) < -2.5, f"peak {20 * math.log10(peak):.2f} dBFS, expected -3"
    assert int(np.sum(np.abs(x) >= 32767 / 32768)) == 0, "clipped samples"
    # Voiced for a good part of the time (not a click or a burst of noise): 20 ms frames above -40 dBFS.
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    active = float(np.mean(np.sqrt(np.mean(frames**2, axis=1)) > 0.01))
    assert active > 0.3, f"only {active:.0%} of the frames carry sound"
    # Duration plausible for the text: 3 to 40 "units" per second of speech (200 ms of padding aside).
    units = _speech_units(item.text)
    speech = max(duration - 0.2, 0.1)
    assert 0.25 < duration < 30
    assert 3 <= units / speech <= 40, f"{units} units in {speech:.2f} s"
    # Trimmed: no long silence at either end (50 ms and 150 ms of padding are added).
    loud = np.flatnonzero(np.abs(x) > 0.02)
    assert loud[0] / 8000 < 0.25 and (len(x) - loud[-1]) / 8000 < 0.45


def test_manifest_matches_files_and_texts() -> None:
    manifest = load_manifest(DEFAULT_OUT)
    assert set(manifest) == {(i.name, i.lang) for i in ITEMS}
    for item in ITEMS:
        entry = manifest[(item.name, item.lang)]
        path = prompt_path(DEFAULT_OUT, item.lang, item.name)
        assert entry.text == item.text
        assert entry.sha256 == sha256_file(path), f"{path} differs from MANIFEST.json"
        assert entry.bytes == path.stat().st_size
        assert entry.voice == CATALOG.engines[item.lang].voice
        assert entry.licence
    on_disk = {(p.stem, p.parent.name) for p in DEFAULT_OUT.glob("*/*.wav")}
    assert on_disk == set(manifest), "files not in the manifest"
    # Text, engine and pipeline unchanged since the build (else: `hotline-tools prompts build`).
    stale = [f"{i.lang}/{i.name}: {s}" for i, s in prompt_status(CATALOG, DEFAULT_OUT) if s != "ok"]
    assert not stale


def test_licences_are_stated() -> None:
    manifest = load_manifest(DEFAULT_OUT)
    zh = [e for e in manifest.values() if e.lang == "zh"]
    assert zh and all("NON-COMMERCIAL" in e.licence and "Baker" in e.licence for e in zh)
    readme = (DEFAULT_OUT / "README.md").read_text(encoding="utf-8")
    assert "non-commercial" in readme.lower() and "Baker" in readme


def test_list_command_reports_everything_up_to_date() -> None:
    result = CliRunner().invoke(prompts_group, ["list", "--check"])
    assert result.exit_code == 0, result.output
    assert "0 missing or stale" in result.output
    assert "welcome" in result.output


# ---------------------------------------------------------------------------------------------------------------
# The build, with a fake engine


def _write_tone(path: Path, seconds: float, rate: int = 16000, freq: float = 220.0) -> None:
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((tone * 32767).astype("<i2").tobytes())


class FakeEngine:
    name = "fake"

    def __init__(self, version: str = "1") -> None:
        self.version = version
        self.prepared = 0
        self.synthesised: list[tuple[str, str]] = []

    def identity(self, voice: str, options: Mapping[str, str | int | float]) -> str:
        return f"fake=={self.version} {voice}"

    def licence(self, voice: str) -> str:
        return "test tone"

    def prepare(self, voices: set[str], echo: Echo) -> None:
        self.prepared += 1

    def synthesize(self, jobs: Sequence[SynthJob], done: Callable[[SynthJob, float], None], echo: Echo) -> None:
        for job in jobs:
            _write_tone(job.raw_path, 0.3 + 0.05 * len(job.text))
            self.synthesised.append((job.lang, job.name))
            done(job, 0.01)


def _python_postprocess(raw: Path, out: Path) -> None:
    """Stand-in for sox (halves the rate of a 16 kHz tone); the idempotence logic does not depend on it."""
    with wave.open(str(raw), "rb") as src:
        data = np.frombuffer(src.readframes(src.getnframes()), dtype="<i2")[::2]
    with wave.open(str(out), "wb") as dst:
        dst.setnchannels(1)
        dst.setsampwidth(2)
        dst.setframerate(8000)
        dst.writeframes(data.tobytes())


def _catalog(prompts: dict[str, dict[str, str]]) -> PromptCatalog:
    return PromptCatalog.model_validate(
        {
            "engines": {"xa": {"engine": "fake", "voice": "a"}, "xb": {"engine": "fake", "voice": "b"}},
            "prompts": prompts,
        }
    )


@pytest.fixture
def postprocess() -> Callable[[Path, Path], None]:
    return telephony_wav if shutil.which("sox") else _python_postprocess


def test_build_is_idempotent(tmp_path: Path, postprocess: Callable[[Path, Path], None]) -> None:
    out = tmp_path / "prompts"
    texts = {"hello": {"xa": "hello there", "xb": "hallo"}, "bye": {"xa": "bye now"}}
    engine = FakeEngine()
    lines: list[str] = []

    def build(
        catalog: PromptCatalog, langs: list[str] | None = None, only: list[str] | None = None, force: bool = False
    ) -> list[tuple[str, str]]:
        engine.synthesised.clear()
        build_prompts(
            catalog,
            out,
            langs=langs,
            only=only,
            force=force,
            engines={"fake": engine},
            postprocess=postprocess,
            echo=lines.append,
        )
        return sorted(engine.synthesised)

    assert build(_catalog(texts)) == [("xa", "bye"), ("xa", "hello"), ("xb", "hello")]
    manifest = load_manifest(out)
    assert {k: e.sha256 for k, e in manifest.items()} == {
        (e.name, e.lang): sha256_file(prompt_path(out, e.lang, e.name)) for e in manifest.values()
    }
    assert all(e.engine == "fake==1 a" or e.engine == "fake==1 b" for e in manifest.values())
    assert any("[3/3]" in line for line in lines)

    # Nothing changed: nothing synthesised, the engine is not even prepared.
    prepared, before = engine.prepared, (out / "MANIFEST.json").read_bytes()
    assert build(_catalog(texts)) == []
    assert engine.prepared == prepared
    assert (out / "MANIFEST.json").read_bytes() == before

    # A changed text, a deleted file, a file edited by hand: exactly those are rebuilt.
    texts["hello"]["xb"] = "guten Tag"
    assert build(_catalog(texts)) == [("xb", "hello")]
    prompt_path(out, "xa", "bye").unlink()
    assert build(_catalog(texts)) == [("xa", "bye")]
    with prompt_path(out, "xa", "hello").open("r+b") as f:
        f.seek(100)
        f.write(b"\x01\x02")
    assert build(_catalog(texts)) == [("xa", "hello")]

    # Another engine version rebuilds; filters pick; --force rebuilds what is selected.
    engine.version = "2"
    assert build(_catalog(texts), langs=["xb"]) == [("xb", "hello")]
    assert build(_catalog(texts), only=["bye"]) == [("xa", "bye")]
    assert build(_catalog(texts)) == [("xa", "hello")]
    assert build(_catalog(texts), force=True, only=["hello"]) == [("xa", "hello"), ("xb", "hello")]

    # A prompt removed from the catalog loses its file and its manifest entry.
    del texts["bye"]
    assert build(_catalog(texts)) == []
    assert not prompt_path(out, "xa", "bye").exists()
    assert set(load_manifest(out)) == {("hello", "xa"), ("hello", "xb")}

    with pytest.raises(PromptError, match="no such prompt"):
        build(_catalog(texts), only=["nope"])
    with pytest.raises(PromptError, match="no prompt has that language"):
        build(_catalog(texts), langs=["fr"])


def test_build_refuses_an_unknown_engine(tmp_path: Path) -> None:
    catalog = PromptCatalog.model_validate(
        {"engines": {"xa": {"engine": "nope", "voice": "a"}}, "prompts": {"a": {"xa": "x"}}}
    )
    with pytest.raises(PromptError, match="unknown engine 'nope'"):
        build_prompts(catalog, tmp_path, engines={"fake": FakeEngine()}, echo=lambda _: None)


@needs_sox
def test_telephony_wav_converts_trims_and_normalises(tmp_path: Path) -> None:
    raw = tmp_path / "raw.wav"
    rate = 24000
    t = np.arange(rate) / rate
    tone = np.concatenate([np.zeros(rate // 2), 0.9 * np.sin(2 * np.pi * 300 * t), np.zeros(rate)])
    with wave.open(str(raw), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        stereo = np.repeat((tone * 32767).astype("<i2"), 2)
        wav.writeframes(stereo.tobytes())
    out = tmp_path / "out.wav"
    telephony_wav(raw, out)
    params, x = _samples(out)
    assert (params.framerate, params.nchannels, params.sampwidth) == (8000, 1, 2)
    assert 1.1 < params.nframes / 8000 < 1.3  # 1 s of tone + 0.05 + 0.15 s of padding, the silences trimmed
    assert abs(20 * math.log10(float(np.max(np.abs(x)))) + 3.0) < 0.1
    header = out.read_bytes()[:44]
    assert header[:4] == b"RIFF" and header[36:40] == b"data"  # plain PCM header (Asterisk reads it)
    assert struct.unpack("<H", header[20:22])[0] == 1
    first = sha256_file(out)
    telephony_wav(raw, out)
    assert sha256_file(out) == first  # no dither: rebuilds are byte-identical


# ---------------------------------------------------------------------------------------------------------------
# The worker protocol of the engines in their own environments (with this interpreter standing in for one)


class ToneVenvEngine(VenvEngine):
    name = "tone"
    venv_name = "tone"
    worker = """
import math, struct, wave
_loaded = []
def preload(voice, options):
    _loaded.append(voice)
    print("noise on stdout must not break the protocol")
def synth(text, voice, options, out):
    assert _loaded == [voice], _loaded
    if text == "fail":
        raise RuntimeError("boom")
    with wave.open(out, "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
        w.writeframes(b"".join(struct.pack("<h", int(9000 * math.sin(i / 10))) for i in range(4000)))
"""

    def install_steps(self, voices: set[str]) -> list[list[str]]:
        return []

    def identity(self, voice: str, options: Mapping[str, str | int | float]) -> str:
        return "tone"

    def licence(self, voice: str) -> str:
        return "none"


def _fake_venv(root: Path) -> ToneVenvEngine:
    engine = ToneVenvEngine(root)
    (engine.venv / "bin").mkdir(parents=True)
    (engine.venv / "bin" / "python").symlink_to(sys.executable)
    return engine


def test_venv_engine_worker_protocol(tmp_path: Path) -> None:
    engine = _fake_venv(tmp_path)
    engine.prepare({"v"}, echo=lambda _: None)  # no install steps: only the stamp is written
    assert list(engine.venv.glob(".prompt-build-*"))
    jobs = [SynthJob(f"p{i}", "xx", f"text {i}", "v", {}, tmp_path / f"p{i}.wav") for i in range(3)]
    done: list[str] = []
    said: list[str] = []
    engine.synthesize(jobs, lambda job, seconds: done.append(job.name), said.append)
    assert done == ["p0", "p1", "p2"]
    assert all(job.raw_path.stat().st_size > 8000 for job in jobs)
    assert any("ready in" in line for line in said)
    assert "noise on stdout" in engine.log_path.read_text()

    failing = [SynthJob("bad", "xx", "fail", "v", {}, tmp_path / "bad.wav")]
    with pytest.raises(PromptError, match="boom"):
        engine.synthesize(failing, lambda job, seconds: None, said.append)
