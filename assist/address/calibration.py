"""What the confidence on the address card means: the share of cards shown at that confidence that are right.

The extractor's raw score ranks candidates well but says too little about how often a card is right. First fitted
on the dev lines of the address speech set through the recogniser (bench/address_audio_bench.py): cards scoring
0.4-0.5 were right 54 % of the time, 0.5-0.6 88 %, 0.6-0.7 100 %, 0.7-0.8 96 %, 0.8 and over 100 %. Then checked
through real calls read from the desk (bench/address_call_bench.py --dump, bench/address_calibration.py), dev
lines: cards that map showed at 80-85 % (raw 0.6-0.67; often a district from its bare two-character name, which
the recogniser also writes for sound-alikes: 我海淀 for 渤海镇, 延庆卡 for 燃气卡) were right 89 % of the time, so
the point where a card becomes "sure" moved from raw 0.6 to 0.667. A card shown at 80 % or more is then right at
least 95 % of the time on dev (97 %) and held-out (98 %, never fitted on). Ranking is unchanged. Checked again on
dev calls said by 18 other voices (bench/address_calibration.py --fit): there, cards from raw 0.60 up were all right,
so the map keeps the stricter of the two fits.
"""

from __future__ import annotations

import itertools

SURE = 0.8  # shown confidence from which a card counts as sure: right at least 95 % of the time
# (raw score, shown confidence), linear between the points.
POINTS: tuple[tuple[float, float], ...] = ((0.0, 0.0), (0.45, 0.5), (0.667, 0.8), (0.8, 0.95), (1.0, 0.99))


def shown_confidence(raw: float) -> float:
    return _along(POINTS, raw)


def raw_score(shown: float) -> float:
    """The raw score a shown confidence came from (the map rises strictly), so that the map can be refitted from
    the cards the desk showed."""
    return _along(tuple((y, x) for x, y in POINTS), shown)


def _along(points: tuple[tuple[float, float], ...], x: float) -> float:
    """The piecewise-linear function through `points` at `x` (flat beyond the ends)."""
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x <= x1:
            return round(y0 + (y1 - y0) * (x - x0) / (x1 - x0), 3)
    return points[-1][1]
