"""Decode hints: what a first reading of an utterance suggests the speaker said, for a second, guided decode.

The recogniser knows nothing of places; whoever wires the engine (the composition root) may give it a
`DecodeHints` that looks at a final's text and returns phrases worth a second decode (a district's streets when
the district was heard but the street was not), and whole lines to score against the audio (the heard line with a
misheard span put right). The second readings go out as `alternative` segments after the final; the final itself is
never delayed or changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class DecodeHints(Protocol):
    def phrases_for(self, text: str) -> Sequence[str]:
        """Phrases to decode the utterance again with (most likely first); empty: no second decode. Called on a
        decode thread: must be quick (a millisecond or two) and thread-safe."""
        ...

    def readings_for(self, text: str) -> Sequence[str]:
        """Whole lines the utterance may have been instead (the text with a misheard span put right), for the
        recogniser to score against the audio: the best, where the audio bears it out, follows the guided decode's
        reading as one more `alternative`. Called as `phrases_for` is."""
        ...
