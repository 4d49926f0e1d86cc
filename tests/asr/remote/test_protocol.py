"""The worker protocol's framing and validation (no worker needed)."""

from __future__ import annotations

import pytest

from asr.engine import Segment
from asr.remote.protocol import (
    MAX_AUDIO_BYTES,
    Open,
    ProtocolError,
    pack_audio,
    parse_client,
    parse_worker,
    segment_message,
    unpack_audio,
)


def test_audio_frames_round_trip() -> None:
    assert unpack_audio(pack_audio(7, b"\x01\x00\x02\x00")) == (7, b"\x01\x00\x02\x00")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x00\x01", "bad_audio"),  # shorter than a channel number
        (pack_audio(3, b"\x01\x02\x03"), "bad_audio"),  # odd: not 16-bit samples
        (pack_audio(3, bytes(MAX_AUDIO_BYTES + 2)), "too_large"),
    ],
)
def test_bad_audio_frames_are_named(frame: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        unpack_audio(frame)
    assert caught.value.code == code


def test_an_open_message_is_parsed_with_its_bounds() -> None:
    message = parse_client('{"type": "open", "channel": 1, "stream_id": "c1:caller:1", "speaker": "caller"}')
    assert message == Open(channel=1, stream_id="c1:caller:1", speaker="caller")
    assert message.sample_rate == 16000


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        ("{not json", "bad_json", "JSON"),
        ('{"type": "dance", "channel": 1}', "bad_message", "type"),
        ('{"type": "open", "channel": 0, "stream_id": "s", "speaker": "caller"}', "bad_message", "channel"),
        (
            '{"type": "open", "channel": 1, "stream_id": "s", "speaker": "caller", "sample_rate": 100}',
            "bad_message",
            "sample_rate",
        ),
        ('{"type": "finish", "channel": 1, "extra": true}', "bad_message", "extra"),
        ('{"type": "close", "channel": 1, "pad": "' + "x" * 70000 + '"}', "too_large", "65536"),
    ],
)
def test_bad_messages_say_what_is_wrong(text: str, code: str, words: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_client(text)
    assert caught.value.code == code
    assert words.lower() in str(caught.value).lower()


def test_a_segment_travels_with_its_utterance_index() -> None:
    segment = Segment("final", "call-9:caller:2:14", "call-9:caller:2", "caller", "你好", 1200, 2300, 0.8)
    message = parse_worker(segment_message(5, segment).model_dump_json())
    assert message.type == "segment"
    assert (message.channel, message.index, message.text, message.start_ms) == (5, 14, "你好", 1200)
