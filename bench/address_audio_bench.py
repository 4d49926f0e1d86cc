#!/usr/bin/env python
"""Addresses from the caller's voice: what the address card shows after the caller's lines, per set.

    .venv/bin/python bench/address_audio_bench.py                # engine path, all sets (ASR cached per setting)
    .venv/bin/python bench/address_audio_bench.py --fresh        # decode again even where a cached transcript exists
    .venv/bin/python bench/address_audio_bench.py --limit 40     # the first 40 lines of each set
    .venv/bin/python bench/address_audio_bench.py --no-real --cases tests/assist/address/speech_cases_retest.yaml
                                                                  # the retest set (first: `hotline-tools
                                                                  # address-speech audio --cases` that file)

The lines are tests/assist/address/speech_cases.yaml (dev: tuned on; holdout: never tuned on, other streets),
as telephone audio made by `hotline-tools address-speech audio` (var/speech/address), plus the real Mandarin
speech of ../shared/speech-zh as lines that name no place (set "real"). The retest set
(speech_cases_retest.yaml) says the same kinds of places in sentences written after the tuning. Each clip goes
through the simulated phone line (8 kHz G.711 mu-law) into the streaming recogniser exactly as a call feeds it
(20 ms frames, VAD endpoints, finals); the finals are replayed through the address extractor as the map assistant
does (earlier finals as context) and the card's top candidate is scored:

- district / street / community: the card's district, street/town (any the line allows) and community (where
  the line names one) are right; no card counts as wrong;
- false: lines naming no place that still got a card;
- sure n / sure ok: cards shown at >= 80 % confidence, and the share of them that is right (target >= 95 %);
- ms p50/p95: address resolution per final segment;
- CPU: recogniser CPU seconds per second of audio (process time while decoding; 2 cores shared).

Transcripts are cached in var/cache/address_speech/<setting hash>.json by clip, so a change to the extractor alone is
measured in seconds; --fresh decodes again.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from asr_eval import stream_segments  # noqa: E402  (bench/, the script's folder)

from asr.audio import ASR_RATE, FloatArray, resample  # noqa: E402
from asr.engine import AsrEngine  # noqa: E402
from asr.faster_whisper_engine import SPOKEN_S  # noqa: E402
from asr.hints import DecodeHints  # noqa: E402
from asr.settings import AsrSettings  # noqa: E402
from asr.telephone import telephone_path  # noqa: E402
from assist.address.calibration import SURE  # noqa: E402
from assist.address.extract import AddressExtractor  # noqa: E402
from assist.address.gazetteer import Gazetteer  # noqa: E402
from assist.address.hints import PlaceHints  # noqa: E402
from hotline.settings import load_settings  # noqa: E402
from tools.address_speech.audio import DEFAULT_VOICE, VOICES, clip_name, read_wav  # noqa: E402
from tools.address_speech.cases_file import read_cases  # noqa: E402
from tools.address_speech.cli import AUDIO_DIR, CASES_FILE  # noqa: E402
from tools.address_speech.confusions import count_confusions  # noqa: E402
from tools.address_speech.score import SetScore, replay_card, table  # noqa: E402
from tools.address_speech.sentences import SpeechCase  # noqa: E402
from tools.asr_eval.corpus import available_sets, load_set  # noqa: E402

CACHE = ROOT / "var" / "cache" / "address_speech"
# (kind, text, segment id) per clip; the suffix names the decode hints (which finals get a second decode, and with
# what), which change the transcripts without any recogniser setting changing; the recogniser's code changes it too.
CACHE_FORMAT = (
    "segments-v2/hints-anywhere/loops/district-prompt/early-stop/town-one-lost/town-by-sound-unsure/coverage-of-finals"
)
NOT_OUTPUT = {"workers", "cpu_threads", "tap_port_start", "tap_port_count", "enabled"}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


Segments = list[tuple[str, str, str]]  # (kind, text, segment id): finals and alternatives in arrival order


async def stream_finals(engine: AsrEngine, audio: FloatArray, stream_id: str, phrases: Sequence[str]) -> Segments:
    segments = await stream_segments(engine, audio, stream_id, phrases)
    return [
        ("suggested" if s.suggested else s.kind, s.text, s.segment_id)
        for s in segments
        if s.kind in ("final", "alternative") and s.text.strip()
    ]


Item = tuple[SpeechCase, str, FloatArray]  # the line, its cache key (the clip: audio pipeline included), audio


def real_speech_cases() -> list[Item]:
    """../shared/speech-zh: real Mandarin (and Sichuanese) lines, none of which names a place."""
    out = []
    for name in available_sets():
        for clip in load_set(name):
            case = SpeechCase(f"real-{name}-{clip.name}", clip.reference, "real", None, None, None, "dev")
            out.append((case, case.id, clip.audio()))
    return out


async def transcribe(
    settings: AsrSettings,
    items: list[Item],
    cache: dict[str, Segments],
    hints: DecodeHints | None,
    phrases: Sequence[str],
) -> tuple[float, float]:
    """Decode the cases missing from `cache` into it; CPU seconds and audio seconds of what was decoded. Every
    stream is biased with `phrases`, as the gateway biases its calls' (the district names)."""
    todo = [(key, a) for _, key, a in items if key not in cache]
    cpu = audio_s = 0.0
    if todo:
        from asr.faster_whisper_engine import FasterWhisperEngine

        engine = FasterWhisperEngine(
            settings.model_copy(update={"partial_interval_ms": 10000}), hints=hints if settings.second_pass else None
        )
        try:
            started_cpu = cpu_seconds()
            gate = asyncio.Semaphore(settings.workers)
            done = 0

            async def one(key: str, audio: FloatArray) -> None:
                nonlocal done
                async with gate:
                    cache[key] = await stream_finals(engine, telephone_path(audio), key, phrases)
                done += 1
                if done % 50 == 0:
                    print(f"  decoded {done}/{len(todo)}", flush=True)

            await asyncio.gather(*(one(k, a) for k, a in todo))
            audio_s = sum(len(a) for _, a in todo) / ASR_RATE
            cpu = cpu_seconds() - started_cpu
            print(
                f"  second readings: {engine.rescored} suggested lines borne out by the audio, "
                f"{engine.second_decodes} guided decodes, of {len(todo)} clips",
                flush=True,
            )
            print(
                f"  early decodes: {engine.early_used} became the final, of {engine.early_decodes} "
                f"({engine.early_stopped} stopped after the encoder: the caller spoke again)",
                flush=True,
            )
            decoder = engine.decoder
            print(f"  decodes that looped, done again with a beam of 2: {decoder.loop_retries}", flush=True)
            print(f"  decodes that stopped early, done again without the prompt: {decoder.short_retries}", flush=True)
            print(
                f"  finals aligned to their audio (too few characters to rule out a clause left out): "
                f"{decoder.coverage_checks}; their words left speech uncovered, read again (no prompt; beam 5): "
                f"{decoder.uncovered_retries}",
                flush=True,
            )
            print(f"  utterances of {SPOKEN_S:g} s or more decoded to no text: {engine.silent_finals}", flush=True)
        finally:
            engine.close()
    return cpu, audio_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=Path, default=CASES_FILE)
    parser.add_argument("--audio", type=Path, default=AUDIO_DIR)
    parser.add_argument(
        "--voice", choices=VOICES, default=DEFAULT_VOICE, help="who says the lines (see address-speech audio)"
    )
    parser.add_argument("--limit", type=int, default=0, help="lines per set (0: all)")
    parser.add_argument("--fresh", action="store_true", help="decode again, ignoring cached transcripts")
    parser.add_argument("--streams", type=int, default=2, help="clips decoded at once (one worker each)")
    parser.add_argument("--no-real", action="store_true", help="leave out ../shared/speech-zh")
    parser.add_argument("--no-second-pass", action="store_true", help="no guided second decode (asr.second_pass)")
    parser.add_argument("--failures", choices=["dev", "holdout", "real", "none"], default=None)
    parser.add_argument(
        "--confusions",
        choices=["dev", "holdout"],
        default=None,
        help="print the syllables of named places the recogniser wrote as others (tune on dev only)",
    )
    args = parser.parse_args()

    settings = load_settings()
    asr = settings.asr
    gazetteer = Gazetteer.load(settings.address.resolve(settings.address.gazetteer_file))
    extractor = AddressExtractor(gazetteer, settings.address)

    cases = read_cases(args.cases)
    missing = [c.id for c in cases if not (args.audio / clip_name(c, args.voice)).exists()]
    if missing:
        sys.exit(
            f"{len(missing)} clips missing under {args.audio}: run "
            f"`hotline-tools address-speech audio --cases {args.cases} --voice {args.voice}`"
        )
    groups: dict[str, list[SpeechCase]] = {"dev": [], "holdout": [], "none": []}
    for case in cases:
        groups["none" if case.district is None else case.set].append(case)
    items: list[Item] = []
    for name in groups:
        members = groups[name] = groups[name][: args.limit or None]
        clips = [(c, clip_name(c, args.voice)) for c in members]
        items += [(c, clip, resample(read_wav(args.audio / clip), 8000, ASR_RATE)) for c, clip in clips]
    if not args.no_real:
        real = real_speech_cases()[: args.limit or None]
        groups["real"] = [c for c, _, _ in real]
        items += real
    # What changes the transcripts (not how many threads make them).
    asr = asr.model_copy(
        update={"workers": args.streams, "cpu_threads": 1, "second_pass": asr.second_pass and not args.no_second_pass}
    )
    key = hashlib.sha256((CACHE_FORMAT + asr.model_dump_json(exclude=NOT_OUTPUT)).encode()).hexdigest()[:12]
    print(
        f"recogniser: Whisper {asr.model}, beam {asr.beam_size}, place-name prompt {asr.bias_place_names}, "
        f"second pass {asr.second_pass}; "
        f"{len(items)} lines; cache {key}",
        flush=True,
    )
    started = time.monotonic()
    cache_file = CACHE / f"{key}.json"
    finals: dict[str, Segments] = {}
    if cache_file.exists():
        finals = {k: [(a, b, c) for a, b, c in v] for k, v in json.loads(cache_file.read_text("utf-8")).items()}
    if args.fresh:  # these clips decoded again; other sets' transcripts stay cached
        for _, clip, _ in items:
            finals.pop(clip, None)
    phrases = [d.name for d in gazetteer.districts.values()] if asr.bias_place_names else []  # as hotline/service.py
    cpu, audio_s = asyncio.run(transcribe(asr, items, finals, PlaceHints(extractor), phrases))
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps(finals, ensure_ascii=False), encoding="utf-8")
    if audio_s:
        print(
            f"decoded {audio_s:.0f} s of audio in {time.monotonic() - started:.0f} s; "
            f"CPU {cpu / audio_s:.3f} s per audio second"
        )
    keys = {c.id: key for c, key, _ in items}
    # The decode hints read every final with `extractor`, which keeps what it read: the cards are scored (and
    # their resolution timed) by an extractor that has read none of them yet.
    extractor = AddressExtractor(gazetteer, settings.address)
    scores = []
    for name, members in groups.items():
        score = SetScore(name)
        score.outcomes = [replay_card(extractor, c, finals[keys[c.id]]) for c in members]
        scores.append(score)
    print(table(scores))
    if args.confusions:
        lines = [
            (c, [text for kind, text, _ in finals[keys[c.id]] if kind == "final"]) for c in groups[args.confusions]
        ]
        for confusion in count_confusions(lines):
            if confusion.count >= 3:
                print(confusion.line())
    if args.failures:
        wanted = next(s for s in scores if s.name == args.failures)
        for o in wanted.outcomes:
            if not o.right:
                c = o.case
                card = f"{o.card.district}/{o.card.town}/{o.card.community} {o.card.confidence}" if o.card else "-"
                # A sure card (>= 80 %) with a wrong level is what the calibration promises will not happen.
                sure_wrong = " SURE AND WRONG" if o.card and o.card.confidence >= SURE and not o.shown_right else ""
                towns = "|".join(c.towns) if c.towns else None
                print(
                    f"{c.id}: {c.text}\n    heard {' | '.join(o.finals)}\n    card {card}{sure_wrong}"
                    f"\n    want {c.district}/{towns}/{c.community}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
