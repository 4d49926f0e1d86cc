"""One bounded Whisper decode of one utterance (thread-safe; called from the pool's threads).

What keeps Whisper base sane on short telephone utterances (measured on ../shared/speech-zh, see bench/):
- the input is not padded to 30 s (CTranslate2 accepts shorter mel inputs and the encoder cost falls with
  them) but to `min_input_s` (10 s) with at least `tail_pad_s` of trailing silence: 1-3 s inputs decoded
  as they are loop into repetitions ("各位观观观观..."), padded ones do not;
- output tokens are bounded by the audio length: 8 + `max_tokens_per_s` x seconds;
- a run of one unit repeated (a looping tail) is collapsed to one copy; an output that was mostly such a loop
  is decoded once more with a beam of two, which leaves the loop where greedy search fell into it (measured on
  the address speech set: bench/address_audio_bench.py prints how many);
- a whole utterance read as far fewer characters than its speech holds (Whisper ended the line after its first
  clause) is decoded once more without the prompt, and the longer reading is kept;
- a final whose reading, aligned to the audio, takes over 1.5 s to move on by two tokens (it left speech out:
  Whisper skipped the first clause, or ended early; asr.coverage) is decoded again without the prompt and with a
  beam of 5, and the longest reading is kept (`reread_if_uncovered`; `asr.reread_uncovered` turns it off); a
  reading with more characters than the rest of its speech could hold is not aligned;
- book-title marks 《》 are never written (nobody says them on the phone, and a line Whisper opens with 《 is
  where it loops: "《《《《…" for a whole sentence);
- text is converted to simplified characters (the prompt steers to simplified, not always: 換 -> 换);
- silence-like results (no-speech probability > 0.6 with low log-probability) of utterances under 3 s, and echoes
  of the prompt, are dropped.
The encoder runs once per utterance: its output rides on the result (`Decoded.encoded`), and every further decode
of the same audio (a retry above, the second reading with hinted phrases) starts from it with another prompt; the
encoder is about a third of a decode's time (0.12-0.14 s of 0.3-0.6 s for 10 s of input on one thread).
Phrase biasing: phrases are appended to the initial prompt ("以下是普通话的句子。" + "朝阳区、回龙观。"),
dropped from the end when prompt tokens would pass `max_prompt_tokens`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import zhconv  # type: ignore[import-untyped]

from asr.audio import ASR_RATE, FloatArray
from asr.coverage import token_starts, too_many_to_leave_out, uncovered_s
from asr.settings import AsrSettings

if TYPE_CHECKING:
    from faster_whisper import WhisperModel  # type: ignore[import-untyped]

_MAX_LENGTH = 448  # Whisper decoder positions
_MAX_FRAMES = 3000  # 30 s of mel frames
_UNIT_REPEAT = re.compile(r"(.{2,12}?)\1{2,}")  # a 2-12 character unit three or more times in a row
_CHAR_REPEAT = re.compile(r"(.)\1{4,}")  # one character five or more times
_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
_NEVER_WRITTEN = ("《", "》")
_LOOP_SHARE = 0.5  # an output that collapsing repetitions shortens by more than this share was a loop
_LOOP_MIN_CHARS = 8
# Mandarin callers say 3-5 characters a second; a whole utterance read as fewer than this many per second of
# speech (its pads taken off) was cut short by the decoder and is read again without the prompt.
_EARLY_STOP_CHARS_PER_S = 2.0
_EARLY_STOP_MIN_S = 2.5
# A final with this much speech or more is aligned to its reading; one whose reading takes more than _UNCOVERED_S
# to move on by two tokens left speech out and is read again (asr.coverage).
_COVERAGE_MIN_S = 2.0
_UNCOVERED_S = 1.5
# Such a final is read again twice: without the prompt (greedy) and with a beam of 5 (with it); each found lost
# clauses the other did not (a skipped head, an early end).
_UNCOVERED_BEAM = 5
# Whisper's no-speech rule (no-speech probability > 0.6 and mean log-probability < -1) drops what it reads in noise
# the VAD let through, which comes in short blips. It also dropped whole sentences of speech that Whisper read with
# little confidence (7.5 s of a caller's address, its partials right; bench/README.md): from this long on, the
# line is kept with the low confidence it has.
_NO_SPEECH_LONGEST_S = 3.0

# The encoder's output for one utterance as it was decoded (padded): [1, frames / 2, d_model], float32 on the CPU.
Encoded = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Decoded:
    text: str
    confidence: float  # exp(mean token log-probability)
    no_speech_prob: float
    tokens: int
    looped: bool = False  # most of the raw output was one unit repeated
    encoded: Encoded | None = field(default=None, compare=False, repr=False)  # for a decode of the same audio


def _han(text: str) -> int:
    return sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")


def stopped_early(text: str, audio_s: float, pad_s: float) -> bool:
    """Too few characters for the speech (`audio_s` with `pad_s` of context each side): Whisper ended the line
    after its first clause ("我要反应一下。" for 6 s)."""
    speech_s = audio_s - 2 * pad_s
    return speech_s >= _EARLY_STOP_MIN_S and _han(text) < _EARLY_STOP_CHARS_PER_S * speech_s


def is_loop(raw: str, collapsed: str) -> bool:
    """Most of `raw` was a repetition that collapsing took out."""
    return len(raw) >= _LOOP_MIN_CHARS and len(collapsed) < (1 - _LOOP_SHARE) * len(raw)


def collapse_repetitions(text: str) -> str:
    """Collapse looping output: '和单单,和单单,和单单,...' -> '和单单,'; '观观观观观观' -> '观'."""
    previous = None
    while previous != text:
        previous = text
        text = _CHAR_REPEAT.sub(r"\1", text)
        text = _UNIT_REPEAT.sub(r"\1", text)
    return text


def _bare(text: str) -> str:
    return _PUNCT.sub("", text)


class WhisperDecoder:
    def __init__(self, model: WhisperModel, settings: AsrSettings) -> None:
        from faster_whisper.tokenizer import Tokenizer  # type: ignore[import-untyped]

        self.model = model
        self.settings = settings
        self.tokenizer = Tokenizer(model.hf_tokenizer, True, task="transcribe", language=settings.language)
        self._prompt_bare = _bare(settings.initial_prompt)
        marks = [self.tokenizer.encode(mark) for mark in _NEVER_WRITTEN]
        self._suppress = [-1, *(ids[0] for ids in marks if len(ids) == 1)]  # -1: Whisper's own non-speech set
        self.loop_retries = 0  # decodes done again because the first one looped (read by benches)
        self.short_retries = 0  # ... because the first one stopped early
        self.uncovered_retries = 0  # ... because its words left part of the speech uncovered
        self.coverage_checks = 0  # finals aligned to their audio (the others were short, or dense enough)
        self._unprompted = [*self.tokenizer.sot_sequence, self.tokenizer.no_timestamps]

    def prompt_tokens(self, phrases: Sequence[str] = (), budget: int | None = None) -> list[int]:
        """Decoder prompt: previous-text slot with the initial prompt and phrases (as many as fit in `budget`
        tokens, default max_prompt_tokens), then the task tokens."""
        tok = self.tokenizer
        tail = [*tok.sot_sequence, tok.no_timestamps]
        budget = budget or self.settings.max_prompt_tokens
        base = tok.encode(" " + self.settings.initial_prompt.strip())[:budget]
        kept: list[str] = []
        for phrase in (p.strip() for p in phrases):
            if not phrase:
                continue
            trial = tok.encode(" " + self.settings.initial_prompt.strip() + "、".join([*kept, phrase]) + "。")
            if len(trial) > budget:
                break
            kept.append(phrase)
        text_tokens = tok.encode(" " + self.settings.initial_prompt.strip() + "、".join(kept) + "。") if kept else base
        return [tok.sot_prev, *text_tokens, *tail]

    def decode(
        self,
        audio: FloatArray,
        prompt: Sequence[int],
        min_input_s: float | None = None,
        encoded: Encoded | None = None,
    ) -> Decoded:
        """Transcribe one utterance (16 kHz float32). Blocking; safe from several threads at once. `min_input_s`
        overrides the setting (partials, replaced by their final anyway, are decoded with less padding);
        `encoded` (an earlier result's) skips the encoder for the same audio."""
        return self.decode_batch([(audio, prompt)], min_input_s, None if encoded is None else [encoded])[0]

    def decode_batch(
        self,
        items: Sequence[tuple[FloatArray, Sequence[int]]],
        min_input_s: float | None = None,
        encoded: Sequence[Encoded] | None = None,
    ) -> list[Decoded]:
        """Transcribe several utterances in one CTranslate2 call (their prompts of one length), all padded with
        silence as the longest would be alone; each keeps its own output bound. `encoded`, one per item (of one
        shape), is their audio already through the encoder."""
        settings = self.settings
        if len({len(prompt) for _, prompt in items}) > 1:
            raise ValueError("a batch's prompts must have one length (the start token at one position)")
        if encoded is not None and (len(encoded) != len(items) or len({e.shape for e in encoded}) > 1):
            raise ValueError("a batch's encoded audio must be one per utterance, of one shape")
        states = np.concatenate(encoded) if encoded is not None else self._encode(items, min_input_s)
        bounds = [int(8 + settings.max_tokens_per_s * len(audio) / ASR_RATE) for audio, _ in items]
        prompts = [list(prompt) for _, prompt in items]
        max_length = min(_MAX_LENGTH, len(prompts[0]) + max(bounds))
        beam = settings.beam_size if min_input_s is None else 1  # a partial (its final replaces it): greedy
        results = self._generate(states, prompts, max_length, beam)
        seconds = [len(audio) / ASR_RATE for audio, _ in items]
        decoded = [self._read(r, bound, s) for r, bound, s in zip(results, bounds, seconds, strict=True)]
        for i in [i for i, d in enumerate(decoded) if d.looped]:
            self.loop_retries += 1
            again = self._read(
                self._generate(states[i : i + 1], prompts[i : i + 1], max_length, 2)[0], bounds[i], seconds[i]
            )
            if not again.looped:
                decoded[i] = again
        if min_input_s is None:  # a whole utterance (a partial is replaced by its final anyway)
            for i, audio_s in enumerate(seconds):
                if stopped_early(decoded[i].text, audio_s, settings.vad.speech_pad_ms / 1000):
                    self.short_retries += 1
                    again = self._read(
                        self._generate(states[i : i + 1], [self._unprompted], max_length, 1)[0], bounds[i], seconds[i]
                    )
                    if not again.looped and _han(again.text) > _han(decoded[i].text):
                        decoded[i] = again
        return [replace(d, encoded=states[i : i + 1]) for i, d in enumerate(decoded)]

    def reread_if_uncovered(self, audio: FloatArray, prompt: Sequence[int], first: Decoded) -> Decoded:
        """A final's reading (`first`, decoded from `audio` with `prompt`), or, when aligned to the audio its words
        take over _UNCOVERED_S to move on by two tokens (asr.coverage: Whisper skipped a clause), the longest of it
        and two more readings. Only finals pay for the alignment (about 45 ms of CPU; a decode of the same audio costs
        about ten times as much), and only those with too few characters to prove they left nothing out; readings
        replaced anyway (partials, early decodes the caller spoke past) do not."""
        samples, pad_s = len(audio), self.settings.vad.speech_pad_ms / 1000
        encoded = first.encoded
        speech_s = samples / ASR_RATE - 2 * pad_s
        if not self.settings.reread_uncovered or encoded is None or not first.text or speech_s < _COVERAGE_MIN_S:
            return first
        if too_many_to_leave_out(_han(first.text), speech_s, _UNCOVERED_S):
            return first
        self.coverage_checks += 1
        starts = token_starts(self.model, encoded, prompt, self.tokenizer.encode(first.text), samples)
        if uncovered_s(starts, samples, pad_s) <= _UNCOVERED_S:
            return first
        self.uncovered_retries += 1
        bound = int(8 + self.settings.max_tokens_per_s * samples / ASR_RATE)
        max_length = min(_MAX_LENGTH, len(prompt) + bound)
        best = first
        for again_prompt, beam in ((self._unprompted, 1), (list(prompt), _UNCOVERED_BEAM)):
            again = self._read(self._generate(encoded, [again_prompt], max_length, beam)[0], bound, samples / ASR_RATE)
            if not again.looped and _han(again.text) > _han(best.text):
                best = replace(again, encoded=encoded)
        return best

    def score(self, encoded: Encoded, prompt: Sequence[int], texts: Sequence[str]) -> list[float]:
        """How well each text reads this audio (its encoder output): the log-probability the model gives the text's
        tokens one after the other, all texts in one batched pass. Unlike a decode, this judges lines the decoder
        would not have written, e.g. the heard line with a place name put in for a sound-alike."""
        import ctranslate2  # type: ignore[import-untyped]

        tokens = [self.tokenizer.encode(text) or [self.tokenizer.eot] for text in texts]
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.repeat(encoded, len(texts), axis=0)))
        results = self.model.model.align(features, list(prompt), tokens, encoded.shape[1])
        return [float(np.sum(np.log(np.maximum(np.asarray(r.text_token_probs), 1e-12)))) for r in results]

    def encode(self, audio: FloatArray) -> Encoded:
        """One whole utterance through the encoder alone, padded as `decode` pads it (for `decode(..., encoded=)`)."""
        return self._encode([(audio, ())], None)

    def _encode(self, items: Sequence[tuple[FloatArray, Sequence[int]]], min_input_s: float | None) -> Encoded:
        """The utterances padded to one length (`min_input_s`, at least the longest and its tail), through the
        encoder."""
        import ctranslate2

        settings = self.settings
        longest = max(len(audio) for audio, _ in items) / ASR_RATE
        shortest = settings.min_input_s if min_input_s is None else min_input_s
        samples = int(min(30.0, max(shortest, longest + settings.tail_pad_s)) * ASR_RATE)
        features = []
        for audio, _ in items:
            clip = audio[:samples]
            if len(clip) < samples:
                clip = np.pad(clip, (0, samples - len(clip)))
            features.append(self.model.feature_extractor(clip)[:, :_MAX_FRAMES])
        stacked = np.ascontiguousarray(np.stack(features), dtype=np.float32)
        output = self.model.model.encode(ctranslate2.StorageView.from_array(stacked), to_cpu=True)
        return np.array(output, dtype=np.float32)

    def _generate(self, states: Encoded, prompts: list[list[int]], max_length: int, beam: int) -> list[object]:
        import ctranslate2

        results: list[object] = self.model.model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(states)),
            prompts,
            beam_size=beam,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )
        return results

    def _read(self, result: object, bound: int, audio_s: float) -> Decoded:
        tokens = [t for t in result.sequences_ids[0] if t < self.tokenizer.eot][:bound]  # type: ignore[attr-defined]
        scores = result.scores  # type: ignore[attr-defined]
        score = float(scores[0]) if scores else -10.0
        avg_logprob = score * len(tokens) / (len(tokens) + 1) if tokens else score
        no_speech = float(result.no_speech_prob)  # type: ignore[attr-defined]
        # A token bound can cut a multi-byte character: drop the replacement character it leaves.
        raw = zhconv.convert(self.tokenizer.decode(tokens).replace("\ufffd", "").strip(), "zh-hans")
        text = collapse_repetitions(raw).strip()
        looped = is_loop(raw, text)
        if no_speech > 0.6 and avg_logprob < -1.0 and audio_s < _NO_SPEECH_LONGEST_S:
            text = ""
        bare = _bare(text)
        if not bare or (self._prompt_bare and bare in self._prompt_bare):
            text = ""
        confidence = max(0.0, min(1.0, math.exp(avg_logprob)))
        return Decoded(text=text, confidence=confidence, no_speech_prob=no_speech, tokens=len(tokens), looped=looped)
