"""Streaming Mandarin speech recognition for the gateway.

`asr.engine` is the interface (AsrEngine, AsrStream, Segment, create_engine); `asr.faster_whisper_engine` and
`asr.vosk_engine` implement it; `asr.settings` is the `asr:` settings section; `asr.cli.models_group` is the
`hotline models` command group; `tools.asr_eval.cer` and `asr.telephone` serve evaluation (bench/asr_eval.py).
"""
