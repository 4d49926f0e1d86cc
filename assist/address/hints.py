"""Decode hints from the gazetteer (asr.hints.DecodeHints): the names a second, guided decode of a final should
have in its prompt.

- A final that names a district but none of its streets/towns: the district and its streets, most alike first (by
  loose sound-alike score against the heard text), so the likeliest stay inside the prompt's token budget.
- A final that names no place at all, or only a street/town by sound alone and not surely (太平潮街道): the districts,
  streets/towns and colloquial areas of all Beijing that sound like part of it and that part could be the name of
  (梁香 → 良乡镇, 王平这 → 王平镇; not 麻烦 → 马坊镇); a line with nothing like a place name gets no second decode.

A second reading only ever counts where it agrees with the first (see second_reading.SecondReadings).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from assist.address.extract import AddressExtractor
from assist.address.heard_text import normalize
from assist.address.loose import LooseHit
from events.address import AddressCandidate

# A line that named no place at all: the places sounding at least this much like part of it go into the prompt of
# its second decode (a place that decode writes must then sound at least second_reading.ALTERNATIVE_ECHO_ANYWHERE
# like the heard text: there is no district to narrow the choice).
HINT_ANYWHERE = 0.6
# A place found only where its suffix is heard loosely (渤海镇 as 我海镜, anywhere.SUFFIX_HEARD_LOOSELY), put into a
# line the audio then scores; a suggested line naming it is believed only if it is found so again.
HINT_LOOSELY = 0.6
MAX_PHRASES = 24
MAX_ANYWHERE = 8  # few: every name in the prompt is one more the recogniser may write for a sound-alike
MAX_READINGS = 6  # lines scored against the audio in one batch (each costs about 45 ms of one core)


class PlaceHints:
    """The phrases for a final's guided decode, and the lines to score against its audio."""

    def __init__(self, extractor: AddressExtractor, max_phrases: int = MAX_PHRASES) -> None:
        self.extractor = extractor
        self.max_phrases = max_phrases
        self.sound_alikes = extractor.sound_alikes
        # The recogniser asks for phrases and readings of the same final, one after the other: read it once.
        self._heard = functools.lru_cache(maxsize=16)(self._read)

    def _read(self, text: str) -> AddressCandidate | None:
        return self.extractor.extract(text, "hint").top

    def phrases_for(self, text: str) -> Sequence[str]:
        top = self._heard(text)
        if top is None or self.extractor.unsure_street_by_sound(top):
            return self.places_sounding_like(text, min(MAX_ANYWHERE, self.max_phrases))
        if top.level != "district" or top.district_code is None or top.district is None:
            return ()
        towns = self.towns_sounding_like(text, top.district_code, self.max_phrases - 1)
        return [top.district, *towns]

    def readings_for(self, text: str) -> Sequence[str]:
        return self.readings_sounding_like(text, self._heard(text), MAX_READINGS)

    def towns_sounding_like(self, text: str, district_code: str, limit: int) -> list[str]:
        """The district's current streets/towns, those that sound most like part of `text` first."""
        ranked = self.sound_alikes.town_matcher(district_code).scan(normalize(text), 0.0)
        names = list(dict.fromkeys(self.extractor.gazetteer.towns[h.key].name for h in ranked))
        rest = sorted(
            t.name for t in self.extractor.gazetteer.towns.values() if t.district_code == district_code and t.current
        )
        return list(dict.fromkeys([*names, *rest]))[:limit]

    def places_sounding_like(self, text: str, limit: int) -> list[str]:
        """Districts, streets/towns and colloquial areas of all Beijing that sound most like part of `text`."""
        return self.sound_alikes.anywhere.sounding_like(normalize(text), HINT_ANYWHERE, limit)

    def readings_sounding_like(self, text: str, top: AddressCandidate | None, limit: int) -> list[str]:
        """The heard line with one span put right: the place name that span sounds like, as a caller says it (the
        name, its stem, 白纸坊街 for 白纸坊街道), best sound-alike first. The recogniser scores them against the
        audio, which can tell 酒仙桥 from 青龙桥 for 零零桥 where the sound of the text alone cannot. Which names
        depends on what the line already gives: a place anywhere in Beijing (or a community) for a line that names
        none, the district's streets for a district alone; none for a line naming a street (scoring its
        communities cost 60 % of the scoring's CPU and gained nothing on the held-out lines: bench/README.md).
        `top`: the card the line itself gives (`extractor.extract(text).top`)."""
        norm = normalize(text)
        hits: list[LooseHit] = []
        loose: list[LooseHit] = []
        if top is None or self.extractor.unsure_street_by_sound(top):
            hits += [hit for hit, _ in self.sound_alikes.anywhere.scan(norm, HINT_ANYWHERE)]
            hits += self.sound_alikes.communities_anywhere.scan(norm, HINT_ANYWHERE)
            loose += [hit for hit, _ in self.sound_alikes.anywhere.scan_loosely(norm, HINT_LOOSELY)]
            loose += self.sound_alikes.communities_anywhere.scan_loosely(norm, HINT_LOOSELY)
        elif top.level == "district" and top.district_code is not None:
            hits += self.sound_alikes.town_matcher(top.district_code).scan(norm, HINT_ANYWHERE)
            loose += [
                hit
                for hit, place in self.sound_alikes.anywhere.scan_loosely(norm, HINT_LOOSELY)
                if place.town_codes and top.district_code in place.district_codes
            ]
        lines: list[str] = []
        # The names that sound like the line first; then those found only by a suffix heard loosely.
        for hit in [*sorted(hits, key=lambda h: -h.score), *sorted(loose, key=lambda h: -h.score)]:
            line = text[: hit.start] + hit.surface + text[hit.end :]
            if line != text and line not in lines:
                lines.append(line)
            if len(lines) >= limit:
                break
        return lines
