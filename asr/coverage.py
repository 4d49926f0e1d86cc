"""Where a reading's words fall in its utterance: the longest stretch of speech no word of the reading covers.

Whisper base now and then reads a whole utterance as only part of it: it skips the first clause (留下的垃圾… for
我住在东城区东花市街道，楼下的垃圾…) or ends the line clauses early, and the text alone does not show it (the
characters per second stay plausible). The model's cross-attention does: aligned to the audio (dynamic time warping
over the alignment heads, one decoder pass with the text forced), the tokens of a reading that skipped the head jump
seconds ahead (the warping spreads the jump over the first two or three), and those of one that stopped early end
seconds before the speech does. Within one utterance the speaker never pauses as long as the endpoint
(`asr.vad.min_silence_ms`) and a token is a syllable or two: readings of whole utterances take at most 1.3 s to
move on by two tokens (254 finals of 2 s or more, address lines in 19 voices), those that left a clause out
2.4 s and more.
The text can show the opposite, though: a reading with more characters than the speech less such a gap could hold
at the fastest a caller speaks has left nothing out, and is not aligned (about half the finals of fluent speech).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from asr.audio import ASR_RATE

if TYPE_CHECKING:
    from faster_whisper import WhisperModel  # type: ignore[import-untyped]

MEL_HOP = 160  # samples per mel frame (the alignment counts frames of the unpadded audio in these)
TOKEN_STEP_S = 0.02  # one alignment time step: an encoder frame
# Mandarin callers say 3-5 characters a second; none keeps up more than this for seconds on end.
FASTEST_CHARS_PER_S = 6.5


def token_starts(
    model: WhisperModel, encoded: npt.NDArray[np.float32], prompt: Sequence[int], tokens: Sequence[int], samples: int
) -> list[float]:
    """Seconds from the utterance's start at which each of `tokens` begins, read with `prompt` from `encoded`
    (the utterance's encoder output, one item); `samples` is the unpadded audio's length at 16 kHz."""
    import ctranslate2  # type: ignore[import-untyped]

    if not tokens:
        return []
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded))
    result = model.model.align(features, list(prompt), [list(tokens)], max(1, samples // MEL_HOP))[0]
    starts: dict[int, float] = {}
    for text_index, time_index in result.alignments:
        if text_index < len(tokens):  # the last index is the end-of-text token
            starts.setdefault(text_index, time_index * TOKEN_STEP_S)
    return [starts[i] for i in sorted(starts)]


def too_many_to_leave_out(chars: int, speech_s: float, gap_s: float) -> bool:
    """A reading of `chars` characters of `speech_s` seconds of speech cannot have left `gap_s` of it out: the
    rest would hold them faster than anyone speaks. Such a reading needs no alignment (about 45 ms of CPU)."""
    return chars > FASTEST_CHARS_PER_S * max(0.0, speech_s - gap_s)


def uncovered_s(starts: Sequence[float], samples: int, pad_s: float) -> float:
    """The longest time the reading takes to move on by two tokens, the end of the speech (`pad_s` of context
    before the utterance's end) counting as one more: alignment puts the first token at the start, so a skipped
    head is a long first step or two, and an early end a long way from the last tokens to the end of speech."""
    speech_end = samples / ASR_RATE - pad_s
    if not starts:
        return max(0.0, speech_end - pad_s)
    points = [*starts, speech_end]
    if len(points) < 3:
        return points[-1] - points[0]
    return max(later - earlier for earlier, later in zip(points, points[2:], strict=False))
