"""What the confidence on the address card means: the share of cards shown at that confidence that are right.

The extractor's raw score ranks candidates well but says too little about how often a card is right. Measured on
the dev lines of the address speech set through the recogniser (bench/address_audio_bench.py): cards scoring
0.4-0.5 were right 54 % of the time, 0.5-0.6 88 %, 0.6-0.7 100 %, 0.7-0.8 96 %, 0.8 and over 100 % (every level the
card shows right). This monotone map turns the score into that rate, so that a card shown at 80 % or more is right
at least 95 % of the time (held-out lines: checked by the same bench, never fitted on). Ranking is unchanged.
"""

from __future__ import annotations

import itertools

# (raw score, shown confidence), linear between the points.
POINTS: tuple[tuple[float, float], ...] = ((0.0, 0.0), (0.45, 0.5), (0.6, 0.8), (0.8, 0.95), (1.0, 0.99))


def shown_confidence(raw: float) -> float:
    if raw <= POINTS[0][0]:
        return POINTS[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(POINTS):
        if raw <= x1:
            return round(y0 + (y1 - y0) * (raw - x0) / (x1 - x0), 3)
    return POINTS[-1][1]
