"""Decode hints from the gazetteer (asr.hints.DecodeHints): the names a second, guided decode of a final should
have in its prompt.

- A final that names a district but none of its streets/towns: the district and its streets, most alike first (by
  loose sound-alike score against the heard text), so the likeliest stay inside the prompt's token budget.
- A final that names no place at all, or only a street/town by sound alone and not surely (太平潮街道): the districts,
  streets/towns and colloquial areas of all Beijing that sound like part of it (梁香 → 良乡镇, 王平这 → 王平镇); a
  line with nothing like a place name gets no second decode.

A second reading only ever counts where it agrees with the first (see AddressExtractor.extract_alternative).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from assist.address.extract import AddressExtractor
from events.address import AddressCandidate

MAX_PHRASES = 24
MAX_ANYWHERE = 8  # few: every name in the prompt is one more the recogniser may write for a sound-alike
MAX_READINGS = 6  # lines scored against the audio in one batch (each costs about 45 ms of one core)


class PlaceHints:
    def __init__(self, extractor: AddressExtractor, max_phrases: int = MAX_PHRASES) -> None:
        self.extractor = extractor
        self.max_phrases = max_phrases
        # The recogniser asks for phrases and readings of the same final, one after the other: read it once.
        self._heard = functools.lru_cache(maxsize=16)(self._read)

    def _read(self, text: str) -> AddressCandidate | None:
        return self.extractor.extract(text, "hint").top

    def phrases_for(self, text: str) -> Sequence[str]:
        top = self._heard(text)
        if top is None or self.extractor.unsure_street_by_sound(top):
            return self.extractor.places_sounding_like(text, min(MAX_ANYWHERE, self.max_phrases))
        if top.level != "district" or top.district_code is None or top.district is None:
            return ()
        towns = self.extractor.towns_sounding_like(text, top.district_code, self.max_phrases - 1)
        return [top.district, *towns]

    def readings_for(self, text: str) -> Sequence[str]:
        return self.extractor.readings_sounding_like(text, self._heard(text), MAX_READINGS)
