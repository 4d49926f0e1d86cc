"""Vosk (Kaldi) engine: true streaming recognition from an unpacked vosk model folder.

Each stream owns a `KaldiRecognizer` and runs on one of `workers` lane threads (Kaldi work never touches the
event loop; vosk's cffi calls release the GIL). Partials come from `PartialResult()` whenever its text
changes; finals from `Result()` at vosk's own endpoints (the model's `--endpoint.rule*` silences) and from
`FinalResult()` on finish(). Word times (`SetWords`) give start/end ms; confidence is the mean word
confidence.

Phrase list: ignored. Vosk's only biasing tool is a closed grammar (`SetGrammar`), which turns open speech
into the nearest listed phrase — wrong for a caller who talks freely. Place names are matched later, on the
text.

A recognizer that raises is replaced by a fresh one; the audio since the last final is reported as a gap.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asr.audio import ASR_RATE
from asr.engine import AsrEngine, AsrStream, resolve_path
from asr.settings import AsrSettings
from asr.streaming import LaneStream, StreamRegistry
from asr.workers import Lanes

log = logging.getLogger(__name__)


class VoskModelMissing(RuntimeError):
    """The vosk model folder does not exist; the message says how to install it."""


def _vosk() -> Any:
    import vosk  # type: ignore[import-untyped]

    vosk.SetLogLevel(-1)
    return vosk


class VoskEngine(AsrEngine):
    name = "vosk"

    def __init__(self, settings: AsrSettings, base_dir: Path | None = None, model_dir: Path | None = None) -> None:
        path = model_dir or resolve_path(settings.vosk_model_dir, base_dir)
        if not (path / "am").is_dir() and not (path / "conf").is_dir():
            raise VoskModelMissing(
                f"no vosk model at {path}: run `hotline models install vosk-small-cn` "
                "or set asr.vosk_model_dir to an unpacked vosk model"
            )
        self.settings = settings
        self.model_dir = path
        vosk = _vosk()
        self._vosk = vosk
        self.model = vosk.Model(str(path))
        self.lanes = Lanes(settings.workers, name="asr-vosk")
        self._registry = StreamRegistry()

    @property
    def active_streams(self) -> int:
        return len(self._registry)

    def new_recognizer(self, sample_rate: int) -> Any:
        recognizer = self._vosk.KaldiRecognizer(self.model, float(sample_rate))
        recognizer.SetWords(True)
        if self.settings.vosk_max_alternatives:
            recognizer.SetMaxAlternatives(self.settings.vosk_max_alternatives)
        return recognizer

    def open_stream(
        self, stream_id: str, speaker: str, phrases: Sequence[str] = (), *, sample_rate: int = ASR_RATE
    ) -> VoskStream:
        self._registry.ensure_open()
        return self._registry.add(VoskStream(self, stream_id, speaker, sample_rate))

    def _forget(self, stream: AsrStream) -> None:
        self._registry.discard(stream)

    def close(self) -> None:
        if self._registry.close_all():
            self.lanes.close()


class VoskStream(LaneStream):
    def __init__(self, engine: VoskEngine, stream_id: str, speaker: str, sample_rate: int) -> None:
        super().__init__(engine, stream_id, speaker, sample_rate)
        self._engine = engine
        # lane-thread state
        self._recognizer: Any = None
        self._samples = 0  # samples received
        self._base = 0  # samples at the recognizer's start (its word times count from there)
        self._utterance_start = 0  # samples at the last final
        self._last_partial = ""
        self._partial_snap = 0

    # --- lane thread ---
    def _ms(self, samples: int) -> int:
        return samples * 1000 // self.sample_rate

    def _ensure(self) -> Any:
        if self._recognizer is None:
            self._recognizer = self._engine.new_recognizer(self.sample_rate)
            self._base = self._samples
        return self._recognizer

    def _ingest(self, pcm: bytes) -> None:
        if self._seq.closed:
            return
        try:
            recognizer = self._ensure()
            self._samples += len(pcm) // 2
            if recognizer.AcceptWaveform(pcm):
                self._final(json.loads(recognizer.Result()))
            else:
                self._partial(json.loads(recognizer.PartialResult()))
        except Exception as exc:
            self._restart(exc)

    def _flush(self) -> None:
        try:
            if not self._seq.closed and self._recognizer is not None:
                self._final(json.loads(self._recognizer.FinalResult()))
        except Exception as exc:
            self._restart(exc)
        finally:
            self._seq.flushed()

    def _restart(self, exc: Exception) -> None:
        log.exception("asr stream %s: vosk recognizer failed, starting a new one", self.stream_id)
        index = self._seq.close_utterance()
        gap = self._seq.make(
            "gap", index, "", self._ms(self._utterance_start), self._ms(self._samples), 0.0, error=repr(exc)
        )
        self._seq.deliver(index, gap)
        self._recognizer = None
        self._utterance_start = self._samples
        self._last_partial = ""

    def _partial(self, result: dict[str, Any]) -> None:
        text = str(result.get("partial", "")).strip()
        if not text or text == self._last_partial:
            return
        self._last_partial = text
        self._partial_snap += 1
        index = self._seq.open_index
        segment = self._seq.make("partial", index, text, self._ms(self._utterance_start), self._ms(self._samples), 0.0)
        self._seq.partial(index, self._partial_snap, segment)

    def _final(self, result: dict[str, Any]) -> None:
        alternatives = result.get("alternatives")
        if alternatives:
            result = alternatives[0]
        text = str(result.get("text", "")).strip()
        words = result.get("result") or []
        shown = bool(self._last_partial)
        self._last_partial = ""
        if not text:
            if shown:  # partials were shown for this utterance: close it, the sequencer withdraws them
                self._seq.deliver(self._seq.close_utterance(), None)
            self._utterance_start = self._samples
            return
        if words:
            start = self._ms(self._base) + int(float(words[0]["start"]) * 1000)
            end = self._ms(self._base) + int(float(words[-1]["end"]) * 1000)
            confidence = sum(float(w.get("conf", 0.0)) for w in words) / len(words)
        else:
            start, end = self._ms(self._utterance_start), self._ms(self._samples)
            confidence = float(result.get("confidence", 0.0))
        index = self._seq.close_utterance()
        self._seq.deliver(index, self._seq.make("final", index, text, start, end, round(confidence, 3)))
        self._utterance_start = self._samples
