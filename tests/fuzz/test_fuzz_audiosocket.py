"""AudioSocket framing under arbitrary bytes, split anywhere: bounded audio, bounded buffering."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from fuzzwire import FUZZ, captured_logs, check_actions, feed
from voicetriage.protocols.actions import EndCall, PushAudio
from voicetriage.protocols.audiosocket import DEFAULT_MAX_PAYLOAD, AudioSocketCall, FrameDecoder, encode_frame

UUID_FRAME = encode_frame(0x01, uuid.UUID("40325ec2-5efd-4bd3-805f-53576e581d13").bytes)
kinds = st.sampled_from([0x00, 0x01, 0x03, 0x10, 0x11, 0x12, 0x16, 0x18, 0xFF, 0x02, 0x7F])
frame = st.one_of(
    st.tuples(kinds, st.binary(max_size=700)).map(lambda kp: encode_frame(*kp)),
    st.just(encode_frame(0x10, b"\x00\x01" * 160)),
    st.sampled_from([b"\x03\x00\x019", b"\x03\x00\x01Z", b"\xff\x00\x01\x02", b"\xff\x00\x00", b"\x00\x00\x01x"]),
    st.binary(max_size=12),  # torn headers, lengths over the limit
)


def run(data: bytes, cuts: list[int]) -> None:
    c = AudioSocketCall(peer="127.0.0.1:4000")
    pieces, last = [], 0
    for cut in sorted(set(x % (len(data) + 1) for x in cuts)):
        pieces.append(data[last:cut])
        last = cut
    pieces.append(data[last:])
    with captured_logs() as logs:
        total = 0
        for piece in pieces:
            actions = feed(lambda: c.receive(piece), logs)
            total += len(piece)
            check_actions(actions, input_bytes=len(piece) + c.decoder.pending + 3 * DEFAULT_MAX_PAYLOAD,
                          max_gap_s=0.0)
            # a frame is at most max_payload bytes, so the buffer never holds more than one
            assert c.decoder.pending <= DEFAULT_MAX_PAYLOAD + 3
            if any(isinstance(a, EndCall) for a in actions):
                c.ended = next(a for a in actions if isinstance(a, EndCall))
        feed(c.connection_lost, logs)


@FUZZ
@given(st.lists(frame, max_size=10), st.lists(st.integers(0, 10**6), max_size=6))
def test_frames_after_the_uuid(frames, cuts):
    run(UUID_FRAME + b"".join(frames), cuts)


@FUZZ
@given(st.binary(max_size=3000), st.lists(st.integers(0, 10**6), max_size=6))
def test_any_bytes(data, cuts):
    run(data, cuts)


@FUZZ
@given(st.lists(frame, max_size=10))
def test_audio_out_is_audio_in(frames):
    """Audio pushed is at most the audio frames' payload, twice over: µ-law sent under 0x10
    is detected and transcoded to 16-bit samples (one byte becomes two)."""
    c = AudioSocketCall()
    data = UUID_FRAME + b"".join(frames)
    actions = feed(lambda: c.receive(data))
    audio = sum(len(a.data) for a in actions if isinstance(a, PushAudio))
    assert audio <= 2 * (len(data) - len(UUID_FRAME))


@FUZZ
@given(st.binary(max_size=200), st.integers(1, 64))
def test_decoder_split_anywhere_gives_the_same_frames(data, step):
    whole = FrameDecoder().feed(data)
    d = FrameDecoder()
    parts = []
    for i in range(0, len(data), step):
        parts += d.feed(data[i:i + step])
    assert parts == whole
