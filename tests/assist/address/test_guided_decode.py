"""The guided second decode end to end: the real recogniser, the gazetteer's decode hints, the map assistant's
reading of the alternative (slow: real model)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from asr.audio import ASR_RATE, resample
from asr.faster_whisper_engine import FasterWhisperEngine
from asr.settings import AsrSettings
from asr.telephone import telephone_path
from assist.address.extract import AddressExtractor
from assist.address.hints import PlaceHints
from assist.address.second_reading import SecondReadings
from tests.asr.support import StreamRun, pcm_of, run_stream, with_silence
from tools.address_speech.audio import read_wav

pytestmark = pytest.mark.slow

# "我家在北七家镇，自来水发黄不能喝。" from the address speech set (dev), as the phone carries it (8 kHz): Whisper base
# hears 北七家 as 北西加, which names no place.
CLIP = Path(__file__).parent / "data" / "misheard-beiqijia.wav"


def test_a_line_whose_place_was_misheard_beyond_recognition_gets_it_from_the_second_decode(
    extractor: AddressExtractor,
    second_readings: SecondReadings,
) -> None:
    engine = FasterWhisperEngine(AsrSettings(cpu_threads=1, workers=1), hints=PlaceHints(extractor))
    try:
        audio = with_silence([telephone_path(resample(read_wav(CLIP), 8000, ASR_RATE))])

        async def stream_it() -> StreamRun:
            return await run_stream(engine.open_stream("call-7/caller", "caller"), pcm_of(audio), speed=8.0)

        run = asyncio.run(stream_it())
    finally:
        engine.close()
    finals = {s.segment_id: s.text for s in run.finals()}
    alternatives = [s for s in run.segments if s.kind == "alternative"]
    assert finals and alternatives, run.segments
    assert all(extractor.extract(text, "s").top is None for text in finals.values()), finals  # no place as heard
    cards = [second_readings.extract(finals[a.segment_id], a.text, a.segment_id) for a in alternatives]
    card = next((c.top for c in cards if c is not None and c.top is not None), None)
    assert card is not None, (finals, [a.text for a in alternatives])
    assert (card.district, card.town) == ("昌平区", "北七家镇")
    mention = next(m for m in card.mentions if m.level == "town")
    heard = finals[next(a.segment_id for a, c in zip(alternatives, cards, strict=True) if c is not None)]
    assert heard[mention.start : mention.end] == mention.text and mention.text != "北七家"
