"""AudioSocket framing and call state machine (no sockets, no model).

Frames are written out byte by byte from the protocol definition:
kind (1 byte) | payload length (2 bytes, big-endian) | payload.
"""

from __future__ import annotations

import uuid

import pytest

from voicetriage.protocols.actions import EndCall, PushAudio, PushDigit, StartCall
from voicetriage.protocols.audiosocket import (
    AudioSocketCall,
    FrameDecoder,
    encode_frame,
)

CALL_UUID = uuid.UUID("40325ec2-5efd-4bd3-805f-53576e581d13")
UUID_FRAME = b"\x01\x00\x10" + CALL_UUID.bytes
HANGUP = b"\x00\x00\x00"


def audio_frame(payload: bytes) -> bytes:
    return b"\x10" + len(payload).to_bytes(2, "big") + payload


def test_encode_frame_matches_the_wire_layout():
    assert encode_frame(0x01, CALL_UUID.bytes) == UUID_FRAME
    assert encode_frame(0x00) == HANGUP
    assert encode_frame(0x03, b"9") == b"\x03\x00\x019"
    assert encode_frame(0x10, b"\x01\x02" * 160)[:3] == b"\x10\x01\x40"


def test_decoder_reassembles_frames_split_anywhere():
    stream = UUID_FRAME + audio_frame(b"\x00\x01" * 160) + b"\x03\x00\x01#" + HANGUP
    for cut in (1, 2, 3, 7, 19, 22, len(stream) - 1):
        d = FrameDecoder()
        frames = d.feed(stream[:cut]) + d.feed(stream[cut:])
        assert [f.kind for f in frames] == [0x01, 0x10, 0x03, 0x00]
        assert d.pending == 0


def test_a_call_from_uuid_to_hangup():
    c = AudioSocketCall(peer="127.0.0.1:5555")
    [start] = c.receive(UUID_FRAME)
    assert isinstance(start, StartCall)
    assert start.info.call_id == str(CALL_UUID) and start.info.platform == "audiosocket"
    assert dict(start.info.platform_ids) == {"uuid": str(CALL_UUID)}
    assert (start.spec.encoding, start.spec.sample_rate, start.spec.channels) == ("pcm16", 8000, 1)
    assert start.tracks == ("caller",)
    pcm = b"\x10\x00" * 8000  # 1 s in 20 ms frames
    actions = c.receive(b"".join(audio_frame(pcm[i:i + 320]) for i in range(0, len(pcm), 320)))
    assert len(actions) == 50 and all(isinstance(a, PushAudio) for a in actions)
    assert c.receive(b"\x03\x00\x019") == [PushDigit("9", "caller", 1.0)]
    assert c.receive(HANGUP) == [EndCall("hangup")]
    assert c.receive(audio_frame(b"\x00\x00")) == []  # after hangup: nothing


def test_eof_is_a_hangup_and_asterisk_errors_end_the_call():
    c = AudioSocketCall()
    c.receive(UUID_FRAME)
    assert c.connection_lost() == [EndCall("hangup")]
    c = AudioSocketCall()
    c.receive(UUID_FRAME)
    assert c.receive(b"\xff\x00\x01\x01") == [EndCall("hangup")]  # 0x01: the caller hung up
    c = AudioSocketCall()
    c.receive(UUID_FRAME)
    [end] = c.receive(b"\xff\x00\x01\x02")
    assert end.reason == "asterisk_error" and "frame forwarding" in end.error


@pytest.mark.parametrize(
    "data, code",
    [
        (audio_frame(b"\x00\x00"), "unexpected_message"),  # audio before the UUID
        (b"\x01\x00\x04abcd", "malformed_frame"),  # short UUID
        (UUID_FRAME + UUID_FRAME, "unexpected_message"),
        (UUID_FRAME + audio_frame(b"\x00\x00\x00"), "malformed_frame"),  # odd byte count
        (UUID_FRAME + b"\x03\x00\x02" + b"12", "malformed_frame"),
        (UUID_FRAME + b"\x03\x00\x01x", "malformed_frame"),
        (UUID_FRAME + b"\x00\x00\x01\x00", "malformed_frame"),  # hangup with payload
        (UUID_FRAME + b"\x42\x00\x00", "unsupported_kind"),
        (UUID_FRAME + b"\x12\x00\x02\x00\x00", "unsupported_kind"),  # slin at another rate: not guessed
        (UUID_FRAME + b"\x10\xff\xff", "oversized_frame"),  # 65535-byte audio payload announced
    ],
)
def test_malformed_frames_end_the_call_with_a_reason(data, code):
    c = AudioSocketCall()
    actions = c.receive(data)
    end = actions[-1]
    assert isinstance(end, EndCall) and end.reason == "error" and end.code == code and end.error
    assert c.state == "ended"


def test_frames_before_an_oversized_header_are_kept():
    c = AudioSocketCall()
    actions = c.receive(UUID_FRAME + audio_frame(b"\x01\x00" * 160) + b"\x10\xff\xff")
    assert [type(a).__name__ for a in actions] == ["StartCall", "PushAudio", "EndCall"]
    assert actions[-1].code == "oversized_frame"


def test_connection_closed_inside_a_frame():
    c = AudioSocketCall()
    c.receive(UUID_FRAME + b"\x10\x01\x40" + b"\x00" * 100)
    [end] = c.connection_lost()
    assert end.code == "truncated_frame"


def test_frame_limit_is_configurable():
    c = AudioSocketCall(max_payload=640)
    c.receive(UUID_FRAME)
    assert c.receive(audio_frame(b"\x00" * 640)) == [PushAudio(b"\x00" * 640)]
    [end] = c.receive(audio_frame(b"\x00" * 642))
    assert end.code == "oversized_frame"
