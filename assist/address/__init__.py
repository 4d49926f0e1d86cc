"""Address resolution for Beijing 12345 calls: a gazetteer built from registry data, extraction of spoken
addresses (exact, alias, colloquial and pinyin matches) with hierarchy checks, and an optional online geocoder.

Entry points: ``AddressResolver`` (service), ``AddressExtractor`` (local extraction), ``SecondReadings`` (what a
second reading of a final adds), ``PlaceHints`` (the recogniser's decode hints), ``Gazetteer`` (data),
``gazetteer_group`` in ``cli`` (``hotline-tools gazetteer build|info|resolve``), ``AddressSettings``.
"""

from assist.address.extract import AddressExtractor
from assist.address.gazetteer import Gazetteer, GazetteerMissing
from assist.address.service import AddressResolver
from assist.address.settings import AddressSettings
from events.address import AddressCandidate, AddressCandidates, Conflict, Mention

__all__ = [
    "AddressCandidate",
    "AddressCandidates",
    "AddressExtractor",
    "AddressResolver",
    "AddressSettings",
    "Conflict",
    "Gazetteer",
    "GazetteerMissing",
    "Mention",
]
