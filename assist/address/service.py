"""Address resolution for the desktop: a final caller segment → an ``address.candidates`` event body.

The gazetteer extraction is local and sub-millisecond (no thread needed); the optional online geocoder only
places the top candidate when the gazetteer has no point of its own for it (communities) or is unsure.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from assist.address.extract import AddressExtractor
from assist.address.gazetteer import Gazetteer
from assist.address.geocoder import Geocoder, GeocoderError, make_geocoder
from assist.address.second_reading import SecondReadings
from assist.address.settings import AddressSettings
from events.address import AddressCandidate, AddressCandidates

log = structlog.get_logger(__name__)

PARTIAL_CEILING = 0.79  # below the 80 % at which a card counts as sure


class AddressResolver:
    def __init__(
        self,
        extractor: AddressExtractor,
        geocoder: Geocoder | None = None,
        settings: AddressSettings | None = None,
    ) -> None:
        self.extractor = extractor
        self.second_readings = SecondReadings(extractor)
        self.geocoder = geocoder
        self.settings = settings or extractor.settings

    @classmethod
    def from_settings(cls, settings: AddressSettings) -> AddressResolver:
        """Load the gazetteer file (GazetteerMissing if not built) and the configured geocoder."""
        gazetteer = Gazetteer.load(settings.resolve(settings.gazetteer_file))
        return cls(AddressExtractor(gazetteer, settings), make_geocoder(settings), settings)

    def resolve_local(
        self, text: str, segment_id: str, *, partial: str | None = None, context: Sequence[str] = ()
    ) -> AddressCandidates:
        return self.extractor.extract(text, segment_id, partial=partial, context=context)

    async def resolve(
        self, text: str, segment_id: str, *, partial: str | None = None, context: Sequence[str] = ()
    ) -> AddressCandidates:
        return await self._placed(self.resolve_local(text, segment_id, partial=partial, context=context))

    def glimpse(self, partial: str, segment_id: str, *, context: Sequence[str] = ()) -> AddressCandidates:
        """A line still being spoken: the gazetteer's reading of it, never shown as sure (only the final firms a
        place up), with no geocoder round trip for text that will change."""
        found = self.extractor.extract("", segment_id, partial=partial, context=context)
        capped = [c.model_copy(update={"confidence": min(c.confidence, PARTIAL_CEILING)}) for c in found.candidates]
        return found.model_copy(update={"candidates": capped})

    async def resolve_alternative(
        self, heard: str, alternative: str, segment_id: str, *, context: Sequence[str] = (), suggested: bool = False
    ) -> AddressCandidates | None:
        """A deeper place from a second reading of a final, or None (see SecondReadings.extract)."""
        result = self.second_readings.extract(heard, alternative, segment_id, context=context, suggested=suggested)
        return None if result is None else await self._placed(result)

    async def _placed(self, result: AddressCandidates) -> AddressCandidates:
        top = result.top
        if self.geocoder is None or top is None:
            return result
        if top.level != "community" and top.confidence >= self.settings.geocode_below_confidence:
            return result
        placed = await self._place(top)
        if placed is None:
            return result
        return result.model_copy(update={"candidates": [placed, *result.candidates[1:]]})

    async def _place(self, candidate: AddressCandidate) -> AddressCandidate | None:
        assert self.geocoder is not None
        query = "北京市" + "".join(p for p in (candidate.district, candidate.town, candidate.community) if p)
        try:
            results = await self.geocoder.geocode(query)
        except GeocoderError as exc:
            log.warning("address.geocoder_failed", geocoder=self.geocoder.name, error=str(exc))
            return None
        for r in results:
            if r.adcode and candidate.district_code and r.adcode[:6] != candidate.district_code:
                continue  # the provider placed it in another district: keep the gazetteer's point
            return candidate.model_copy(
                update={
                    "lng": r.lng,
                    "lat": r.lat,
                    "coord_level": "geocoder",
                    "source": f"{candidate.source}+{self.geocoder.name}",
                }
            )
        return None

    async def aclose(self) -> None:
        if self.geocoder is not None:
            await self.geocoder.aclose()
