"""Decode hints from the gazetteer: when a final names a district but none of its streets/towns, the recogniser
decodes the utterance again with that district's streets in the prompt (asr.hints.DecodeHints).

The streets go most-alike first (by loose sound-alike score against the heard text), so the likeliest stay inside
the prompt's token budget. A second reading only ever counts where it agrees with the first (see
AddressExtractor.extract_alternative).
"""

from __future__ import annotations

from collections.abc import Sequence

from assist.address.extract import AddressExtractor

MAX_PHRASES = 24


class PlaceHints:
    def __init__(self, extractor: AddressExtractor, max_phrases: int = MAX_PHRASES) -> None:
        self.extractor = extractor
        self.max_phrases = max_phrases

    def phrases_for(self, text: str) -> Sequence[str]:
        top = self.extractor.extract(text, "hint").top
        if top is None or top.level != "district" or top.district_code is None or top.district is None:
            return ()
        towns = self.extractor.towns_sounding_like(text, top.district_code, self.max_phrases - 1)
        return [top.district, *towns]
