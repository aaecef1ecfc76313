"""AudioSocket framing and call state machine (no sockets, no model).

Frames are written out byte by byte from the protocol definition:
kind (1 byte) | payload length (2 bytes, big-endian) | payload, with the kinds of
Asterisk's include/asterisk/res_audiosocket.h (20+): 0x10-0x18 signed linear at
8, 12, 16, 24, 32, 44.1, 48, 96 and 192 kHz.
"""

from __future__ import annotations

import logging
import uuid

import numpy as np
import pytest
from tel_helpers import mulaw, pcm8k

from voicetriage.audio import sniff
from voicetriage.audio.codecs import ulaw_decode
from voicetriage.protocols.actions import EndCall, PushAudio, PushDigit, StartCall
from voicetriage.protocols.audiosocket import (
    MAX_HOLD_BYTES,
    AudioSocketCall,
    FrameDecoder,
    encode_frame,
)

CALL_UUID = uuid.UUID("40325ec2-5efd-4bd3-805f-53576e581d13")
UUID_FRAME = b"\x01\x00\x10" + CALL_UUID.bytes
HANGUP = b"\x00\x00\x00"
RATES = {0x10: 8000, 0x11: 12000, 0x12: 16000, 0x13: 24000, 0x14: 32000, 0x15: 44100, 0x16: 48000,
         0x17: 96000, 0x18: 192000}
CLIP = "en_asterisk8k_pbx_invalid"


def frame(kind: int, payload: bytes = b"") -> bytes:
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


def audio_frame(payload: bytes) -> bytes:
    return frame(0x10, payload)


def frames(kind: int, data: bytes, size: int) -> bytes:
    return b"".join(frame(kind, data[i:i + size]) for i in range(0, len(data), size))


def tone(rate: int, seconds: float, hz: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (8000 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def audio_of(actions) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, PushAudio))


def kinds(actions) -> list[str]:
    return [type(a).__name__ for a in actions]


def started(kind: int = 0x12) -> AudioSocketCall:
    """A call past its first (16 kHz unless told) audio frame."""
    c = AudioSocketCall()
    assert c.receive(UUID_FRAME) == []
    assert kinds(c.receive(frame(kind, b"\x00\x00" * 320))) == ["StartCall", "PushAudio"]
    return c


@pytest.fixture(scope="module")
def speech(manifest) -> bytes:
    """A real 8 kHz recording from ../shared/eval as little-endian PCM16."""
    return pcm8k(manifest[CLIP]["path"]).astype("<i2").tobytes()


def test_encode_frame_matches_the_wire_layout():
    assert encode_frame(0x01, CALL_UUID.bytes) == UUID_FRAME
    assert encode_frame(0x00) == HANGUP
    assert encode_frame(0x03, b"9") == b"\x03\x00\x019"
    assert encode_frame(0x10, b"\x01\x02" * 160)[:3] == b"\x10\x01\x40"
    assert encode_frame(0x12, b"\x01\x02" * 320)[:3] == b"\x12\x02\x80"


def test_decoder_reassembles_frames_split_anywhere():
    stream = UUID_FRAME + audio_frame(b"\x00\x01" * 160) + b"\x03\x00\x01#" + HANGUP
    for cut in (1, 2, 3, 7, 19, 22, len(stream) - 1):
        d = FrameDecoder()
        got = d.feed(stream[:cut]) + d.feed(stream[cut:])
        assert [f.kind for f in got] == [0x01, 0x10, 0x03, 0x00]
        assert d.pending == 0


@pytest.mark.parametrize("kind", sorted(RATES))
def test_each_signed_linear_kind_starts_the_call_at_its_rate(kind):
    rate = RATES[kind]
    c = AudioSocketCall(peer="127.0.0.1:5555")
    assert c.receive(UUID_FRAME) == []  # the rate is not known before the first audio
    pcm = tone(rate, 1.0)
    size = rate // 50 * 2  # 20 ms, as Asterisk sends it
    actions = c.receive(frames(kind, pcm, size)) + c.receive(b"\x03\x00\x019") + c.receive(HANGUP)
    start = actions[0]
    assert isinstance(start, StartCall) and start.tracks == ("caller",)
    assert (start.spec.encoding, start.spec.sample_rate, start.spec.channels) == ("pcm16", rate, 1)
    assert start.info.call_id == str(CALL_UUID) and start.info.platform == "audiosocket"
    assert dict(start.info.platform_ids) == {"uuid": str(CALL_UUID)}
    assert audio_of(actions) == pcm  # byte for byte, whatever was held on the way
    assert [a for a in actions if isinstance(a, PushDigit)] == [PushDigit("9", "caller", 1.0)]
    assert actions[-1] == EndCall("hangup") and c.codec == "pcm16"
    assert c.receive(frame(kind, b"\x00\x00")) == []  # after hangup: nothing


def test_other_kinds_are_delivered_frame_by_frame():
    c = AudioSocketCall()
    c.receive(UUID_FRAME)
    first, second = b"\x01\x02" * 320, b"\x03\x04" * 320
    assert c.receive(frame(0x12, first)) == [
        StartCall(c.info, c.spec, ("caller",)), PushAudio(first)]
    assert c.receive(frame(0x12, second)) == [PushAudio(second)]
    assert c.receive(b"\x03\x00\x01#") == [PushDigit("#", "caller", 0.04)]


def test_real_slin_speech_under_0x10_is_delivered_unchanged(speech, caplog):
    caplog.set_level(logging.WARNING, "voicetriage.protocols.audiosocket")
    c = AudioSocketCall()
    c.receive(UUID_FRAME)
    half = len(speech) // 2 // 320 * 320
    actions = c.receive(frames(0x10, speech[:half], 320) + b"\x03\x00\x019")
    actions += c.receive(frames(0x10, speech[half:], 320) + HANGUP)
    assert kinds(actions)[0] == "StartCall" and actions[0].spec.sample_rate == 8000
    assert audio_of(actions) == speech
    [digit] = [a for a in actions if isinstance(a, PushDigit)]
    assert digit == PushDigit("9", "caller", half / 2 / 8000)
    assert c.codec == "pcm16" and actions[-1] == EndCall("hangup")
    assert not caplog.records


def test_mulaw_sent_as_0x10_is_detected_and_transcoded(speech, caplog):
    """Dial(AudioSocket/...c(ulaw)): Asterisk sends µ-law bytes (160 a frame) under 0x10."""
    caplog.set_level(logging.WARNING, "voicetriage.protocols.audiosocket")
    law = mulaw(np.frombuffer(speech, dtype="<i2"))  # the standard library's encoder
    c = AudioSocketCall()
    c.receive(UUID_FRAME)
    # odd-length frames too: never slin, and they must not close a µ-law call
    head = frame(0x10, law[:161]) + frame(0x10, law[161:320]) + frames(0x10, law[320:3520], 160)
    actions = c.receive(head) + c.receive(b"\x03\x00\x019")
    actions += c.receive(frames(0x10, law[3520:], 160) + HANGUP)
    assert kinds(actions)[0] == "StartCall"
    assert (actions[0].spec.encoding, actions[0].spec.sample_rate) == ("pcm16", 8000)
    assert audio_of(actions) == ulaw_decode(law).astype("<i2").tobytes()  # every byte, transcoded
    assert [a for a in actions if isinstance(a, PushDigit)] == [PushDigit("9", "caller", 3520 / 8000)]
    assert c.codec == "mulaw" and actions[-1] == EndCall("hangup")
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "mu-law" in warnings[0]
    assert "Dial(AudioSocket/host:port/${UUID}/c(slin16))" in warnings[0] and "c(slin)" in warnings[0]


def _stream(c: AudioSocketCall, wire: bytes) -> list:
    """``wire`` in 1000-byte reads (frames split anywhere), then a hangup."""
    actions = []
    for i in range(0, len(wire), 1000):
        actions += c.receive(wire[i:i + 1000])
    return actions + c.receive(HANGUP)


def test_every_kit_clip_is_told_apart_both_ways(manifest):
    """Each real recording of ../shared/eval, at 8 kHz, as slin (320-byte frames) and as
    µ-law (160-byte frames) under 0x10: slin is never taken for µ-law, µ-law always is."""
    for clip in manifest.values():
        pcm = pcm8k(clip["path"])
        slin = AudioSocketCall()
        slin.receive(UUID_FRAME)
        out = _stream(slin, frames(0x10, pcm.astype("<i2").tobytes(), 320))
        assert slin.codec == "pcm16" and audio_of(out) == pcm.astype("<i2").tobytes(), clip["id"]
        law = mulaw(pcm)
        ulaw = AudioSocketCall()
        ulaw.receive(UUID_FRAME)
        out = _stream(ulaw, frames(0x10, law, 160))
        # quiet audio before the decision (a clip's leading silence) went on as it came
        n = ulaw.undecided_bytes
        assert n % 2 == 0 and sniff.quiet(law[:n]), clip["id"]
        assert ulaw.codec == "mulaw", clip["id"]
        assert audio_of(out) == law[:n] + ulaw_decode(law[n:]).astype("<i2").tobytes(), clip["id"]


@pytest.mark.parametrize("level", [0, 1, 3, 10, 30, 100, 300, 1000, 3000])
def test_silence_and_noise_in_slin_are_never_taken_for_mulaw(level, caplog):
    caplog.set_level(logging.WARNING, "voicetriage.protocols.audiosocket")
    rng = np.random.default_rng(level)
    pcm = np.clip(rng.normal(0, level, 8000 * 3), -32768, 32767).astype("<i2").tobytes()
    c = AudioSocketCall()
    c.receive(UUID_FRAME)
    out = _stream(c, frames(0x10, pcm, 320))
    assert audio_of(out) == pcm and c.codec == "pcm16" and not caplog.records


def test_quiet_audio_is_not_held_while_the_codec_is_unknown():
    c = AudioSocketCall()
    c.receive(UUID_FRAME)
    out = c.receive(frames(0x10, b"\x00\x00" * 2000, 320))  # 4000 bytes of digital silence
    assert kinds(out)[0] == "StartCall" and audio_of(out) == b"\x00\x00" * 2000
    assert c.codec is None  # silence tells nothing: the next window decides


def test_undecidable_loud_audio_is_held_at_most_max_hold_bytes():
    c = AudioSocketCall()
    c.receive(UUID_FRAME)
    law = mulaw(np.frombuffer(tone(8000, 4.0), dtype="<i2"))  # a pure tone: no speech to go by
    out, sent = [], 0
    for i in range(0, len(law), 160):
        out += c.receive(audio_frame(law[i:i + 160]))
        sent += 160
        assert sent - len(audio_of(out)) <= MAX_HOLD_BYTES  # delivered byte for byte as PCM16
    assert audio_of(out)  # delivered (as PCM16) though never decided


def test_digits_before_the_first_audio_are_delivered_after_the_start():
    c = AudioSocketCall()
    c.receive(UUID_FRAME)
    assert c.receive(b"\x03\x00\x019" + b"\x03\x00\x01*") == []  # the call's rate is not known yet
    pcm = b"\x01\x00" * 320
    assert c.receive(frame(0x12, pcm)) == [
        StartCall(c.info, c.spec, ("caller",)), PushDigit("9", "caller", 0.0), PushDigit("*", "caller", 0.0),
        PushAudio(pcm)]
    assert c.spec.sample_rate == 16000


@pytest.mark.parametrize("end, last", [
    (HANGUP, EndCall("hangup")),
    (b"\xff\x00\x01\x01", EndCall("hangup")),  # Asterisk error 0x01: the caller hung up
])
def test_a_call_without_audio_starts_at_8_khz_when_it_ends(end, last):
    c = AudioSocketCall()
    c.receive(UUID_FRAME)
    c.receive(b"\x03\x00\x019")
    actions = c.receive(end)
    assert kinds(actions) == ["StartCall", "PushDigit", "EndCall"]
    assert actions[0].spec.sample_rate == 8000 and actions[1] == PushDigit("9", "caller", 0.0)
    assert actions[-1] == last
    c = AudioSocketCall()
    c.receive(UUID_FRAME)
    assert kinds(c.connection_lost()) == ["StartCall", "EndCall"]  # socket closed: also a hangup


def test_idle_after_the_uuid_still_records_the_call():
    c = AudioSocketCall()
    c.receive(UUID_FRAME)
    start, end = c.idle_timeout(30.0)
    assert isinstance(start, StartCall) and end.code == "idle_timeout" and end.reason == "error"


def test_asterisk_errors_end_the_call():
    c = started()
    assert c.connection_lost() == [EndCall("hangup")]
    c = started()
    assert c.receive(b"\xff\x00\x01\x01") == [EndCall("hangup")]
    c = started()
    [end] = c.receive(b"\xff\x00\x01\x02")
    assert end.reason == "asterisk_error" and "frame forwarding" in end.error


def test_a_kind_change_mid_call_ends_it_after_what_came_before(caplog):
    caplog.set_level(logging.WARNING, "voicetriage.protocols.audiosocket")
    c = started(0x12)
    pcm = b"\x02\x00" * 320
    actions = c.receive(frame(0x12, pcm) + frame(0x10, b"\x00\x00" * 160) + frame(0x12, pcm))
    assert kinds(actions) == ["PushAudio", "EndCall"] and audio_of(actions) == pcm
    end = actions[-1]
    assert end.reason == "error" and end.code == "audio_kind_changed"
    assert "0x12 (slin16, 16000 Hz)" in end.error and "0x10 (slin, 8000 Hz)" in end.error
    assert any("audio_kind_changed" in r.getMessage() or "kind changed" in r.getMessage() for r in caplog.records)


def test_an_unknown_kind_ends_the_call_after_flushing_held_audio(speech, caplog):
    caplog.set_level(logging.WARNING, "voicetriage.protocols.audiosocket")
    c = AudioSocketCall()
    c.receive(UUID_FRAME)
    held = speech[:3200]  # under one window: still held when the bad frame comes
    actions = c.receive(frames(0x10, held, 320) + b"\x03\x00\x01#" + frame(0x42, b"??"))
    assert kinds(actions)[0] == "StartCall" and kinds(actions)[-1] == "EndCall"
    assert audio_of(actions) == held
    assert PushDigit("#", "caller", 0.2) in actions
    end = actions[-1]
    assert end.reason == "error" and end.code == "unsupported_kind" and "0x42" in end.error
    assert [r for r in caplog.records if "0x42" in r.getMessage()]  # logged, not silent
    assert c.receive(audio_frame(b"\x00\x00")) == [] and c.state == "ended"


def test_an_odd_frame_in_a_slin_call_ends_it(speech):
    c = AudioSocketCall()
    c.receive(UUID_FRAME)
    actions = c.receive(frames(0x10, speech[:8000], 320))  # decided: slin
    assert c.codec == "pcm16"
    actions += c.receive(audio_frame(b"\x00\x00\x00"))
    assert audio_of(actions) == speech[:8000]
    assert actions[-1].code == "malformed_frame" and "3 bytes" in actions[-1].error


@pytest.mark.parametrize(
    "data, code",
    [
        (audio_frame(b"\x00\x00"), "unexpected_message"),  # audio before the UUID
        (b"\x03\x00\x019", "unexpected_message"),  # a digit before the UUID
        (b"\x01\x00\x04abcd", "malformed_frame"),  # short UUID
        (UUID_FRAME + UUID_FRAME, "unexpected_message"),
        (UUID_FRAME + b"\x12\x00\x03\x00\x00\x00", "malformed_frame"),  # odd byte count at 16 kHz
        (UUID_FRAME + b"\x03\x00\x02" + b"12", "malformed_frame"),
        (UUID_FRAME + b"\x03\x00\x01x", "malformed_frame"),
        (UUID_FRAME + b"\x00\x00\x01\x00", "malformed_frame"),  # hangup with payload
        (UUID_FRAME + b"\x42\x00\x00", "unsupported_kind"),
        (UUID_FRAME + b"\x02\x00\x00", "unsupported_kind"),
        (UUID_FRAME + b"\x0f\x00\x02\x00\x00", "unsupported_kind"),  # just below the audio kinds
        (UUID_FRAME + b"\x19\x00\x02\x00\x00", "unsupported_kind"),  # just above them
        (UUID_FRAME + b"\x10\xff\xff", "oversized_frame"),  # 65535-byte audio payload announced
    ],
)
def test_malformed_frames_end_the_call_with_a_reason(data, code):
    c = AudioSocketCall()
    actions = c.receive(data)
    end = actions[-1]
    assert isinstance(end, EndCall) and end.reason == "error" and end.code == code and end.error
    assert c.state == "ended"
    if data.startswith(UUID_FRAME):  # the call was recorded: started (at 8 kHz) before it ended
        assert kinds(actions)[0] == "StartCall"


def test_frames_before_an_oversized_header_are_kept():
    c = AudioSocketCall()
    actions = c.receive(UUID_FRAME + frame(0x12, b"\x01\x00" * 320) + b"\x12\xff\xff")
    assert kinds(actions) == ["StartCall", "PushAudio", "EndCall"]
    assert actions[-1].code == "oversized_frame"


def test_connection_closed_inside_a_frame_after_held_audio():
    c = AudioSocketCall()
    actions = c.receive(UUID_FRAME + audio_frame(b"\x01\x00" * 160))
    actions += c.receive(b"\x10\x01\x40" + b"\x00" * 100)
    actions += c.connection_lost()
    assert kinds(actions) == ["StartCall", "PushAudio", "EndCall"]
    assert audio_of(actions) == b"\x01\x00" * 160 and actions[-1].code == "truncated_frame"


def test_frame_limit_is_configurable():
    c = AudioSocketCall(max_payload=640)
    c.receive(UUID_FRAME)
    assert kinds(c.receive(frame(0x12, b"\x00" * 640))) == ["StartCall", "PushAudio"]
    [end] = c.receive(frame(0x12, b"\x00" * 642))
    assert end.code == "oversized_frame"
