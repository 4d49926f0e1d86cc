"""The published contract: `hotline events schema` describes every desk message, and real messages fit it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from events.cli import events_group
from events.contract import DESK_MESSAGES, EVENT_TYPES


def test_the_schema_names_every_event_and_stream_message() -> None:
    result = CliRunner().invoke(events_group, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    mapping = schema["discriminator"]["mapping"]
    assert set(mapping) == {*EVENT_TYPES, "stream.status", "resync", "ping"}
    final = schema["$defs"]["TranscriptFinal"]
    assert {"segment_id", "speaker", "text", "end_ms", "confidence", "call_id"} <= set(final["required"])
    assert final["additionalProperties"] is False


def test_a_stored_desk_message_parses_and_a_wrong_one_does_not() -> None:
    message = {
        "type": "transcript.final", "call_id": "c1", "seq": 7, "ts": "2026-12-02T10:00:00+00:00",
        "caller_number": "13800138000", "language": "zh", "segment_id": "s1", "speaker": "caller",
        "start_ms": 0, "end_ms": 1200, "text": "我家在海淀区", "confidence": 0.91,
    }  # fmt: skip
    assert DESK_MESSAGES.validate_python(message).seq == 7  # type: ignore[union-attr]
    with pytest.raises(ValidationError):
        DESK_MESSAGES.validate_python({**message, "speaker": "robot"})
