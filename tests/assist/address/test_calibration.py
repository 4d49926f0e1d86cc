"""The card's confidence is the calibrated rate, and the order of candidates is kept."""

from __future__ import annotations

from assist.address.calibration import raw_score, shown_confidence
from assist.address.extract import AddressExtractor


def test_the_map_is_monotone_and_bounded() -> None:
    raws = [i / 100 for i in range(101)]
    shown = [shown_confidence(r) for r in raws]
    assert shown == sorted(shown) and shown[0] == 0.0 and shown[-1] == 0.99
    assert shown_confidence(0.667) == 0.8  # where the dev set's cards became right 95 % of the time or more
    assert shown_confidence(0.65) < 0.8  # a district from its bare name, through calls right 89 % of the time


def test_an_exact_street_is_shown_sure_and_a_lone_sound_alike_is_not(extractor: AddressExtractor) -> None:
    exact = extractor.extract("我在朝阳区望京街道，小区门口的垃圾三天没人收了", "s").top
    assert exact is not None and exact.confidence >= 0.9
    slip = extractor.extract("喂,我这儿是白纸方街等,晚上工地施工噪音特别大", "s").top  # 白纸坊街道, heard
    assert slip is not None and slip.town == "白纸坊街道" and slip.confidence < 0.8


def test_a_shown_confidence_leads_back_to_its_raw_score() -> None:
    for raw in (0.0, 0.2, 0.45, 0.6, 0.667, 0.75, 0.9, 1.0):
        assert abs(raw_score(shown_confidence(raw)) - raw) < 0.002
