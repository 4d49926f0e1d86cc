"""Decode hints: what a first reading of an utterance suggests the speaker said, for a second, guided decode.

The recogniser knows nothing of places; whoever wires the engine (the composition root) may give it a
`DecodeHints` that looks at a final's text and returns phrases worth a second decode (a district's streets when
the district was heard but the street was not). The second reading goes out as an `alternative` segment after the
final; the final itself is never delayed or changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class DecodeHints(Protocol):
    def phrases_for(self, text: str) -> Sequence[str]:
        """Phrases to decode the utterance again with (most likely first); empty: no second decode. Called on a
        decode thread: must be quick (a millisecond or two) and thread-safe."""
        ...
