"""Twilio Media Streams state machine (no sockets, no model): messages as Twilio documents them."""

from __future__ import annotations

import base64
import json

import pytest

from voicetriage.protocols.actions import (
    EndCall,
    PushAudio,
    PushDigit,
    PushGap,
    StartCall,
)
from voicetriage.protocols.twilio import TwilioStream

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL = "CA00000000000000000000000000000001"
ACCOUNT = "AC00000000000000000000000000000001"

CONNECTED = '{"event": "connected", "protocol": "Call", "version": "1.0.0"}'


def start(tracks=("inbound",), params=None, fmt=None, seq="1") -> str:
    return json.dumps({
        "event": "start",
        "sequenceNumber": seq,
        "start": {
            "accountSid": ACCOUNT,
            "streamSid": SID,
            "callSid": CALL,
            "tracks": list(tracks),
            "customParameters": params or {},
            "mediaFormat": fmt or {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
        "streamSid": SID,
    })


def media(seq: int, chunk: int, ts_ms: int, payload: bytes, track="inbound") -> str:
    return json.dumps({
        "event": "media",
        "sequenceNumber": str(seq),
        "media": {"track": track, "chunk": str(chunk), "timestamp": str(ts_ms),
                  "payload": base64.b64encode(payload).decode()},
        "streamSid": SID,
    })


def started(**kw) -> TwilioStream:
    s = TwilioStream(**kw)
    assert s.receive_text(CONNECTED) == []
    return s


def test_start_gives_call_info_from_custom_parameters():
    s = started()
    [a] = s.receive_text(start(("inbound", "outbound"),
                               {"caller": "+8613800138000", "called": "95598", "language": "yue-HK", "x": "1"}))
    assert isinstance(a, StartCall)
    assert a.tracks == ("caller", "agent")
    assert (a.spec.encoding, a.spec.sample_rate, a.spec.channels) == ("mulaw", 8000, 1)
    assert a.info.call_id == SID and a.info.platform == "twilio"
    assert dict(a.info.platform_ids) == {"streamSid": SID, "callSid": CALL, "accountSid": ACCOUNT}
    assert a.info.caller_id == "+8613800138000"
    assert a.info.language_hint == "yue-HK"
    assert a.info.metadata["called"] == "95598"
    assert a.info.metadata["customParameters"]["x"] == "1"


def test_from_parameter_is_read_when_caller_is_absent():
    s = started()
    [a] = s.receive_text(start(params={"From": "+85291234567"}))
    assert a.info.caller_id == "+85291234567"


def test_media_per_track_and_timestamp_gap_becomes_silence():
    s = started()
    s.receive_text(start(("inbound", "outbound")))
    chunk = b"\xff" * 160  # 20 ms of µ-law
    assert s.receive_text(media(2, 1, 0, chunk)) == [PushAudio(chunk, "caller")]
    assert s.receive_text(media(3, 2, 20, chunk)) == [PushAudio(chunk, "caller")]
    # chunks 3..52 lost: the next one is stamped 1040 ms -> 1.0 s of silence first
    assert s.receive_text(media(4, 53, 1040, chunk)) == [PushGap(1.0, "caller"), PushAudio(chunk, "caller")]
    assert s.position("caller") == pytest.approx(1.06)
    # the outbound track starts late: its clock starts at the call's start, not at its first chunk
    assert s.receive_text(media(5, 1, 500, chunk, "outbound")) == [PushGap(0.5, "agent"), PushAudio(chunk, "agent")]
    assert s.gap_s == pytest.approx(1.5)


def test_duplicate_or_late_chunk_keeps_audio():
    s = started()
    s.receive_text(start())
    chunk = b"\x7f" * 160
    s.receive_text(media(2, 1, 0, chunk))
    assert s.receive_text(media(3, 1, 0, chunk)) == [PushAudio(chunk, "caller")]
    assert s.late_chunks == 1


def test_dtmf_time_is_the_end_of_the_audio_received():
    s = started()
    s.receive_text(start())
    s.receive_text(media(2, 1, 0, b"\xff" * 8000))  # 1 s
    msg = {"event": "dtmf", "streamSid": SID, "sequenceNumber": "3", "dtmf": {"track": "inbound_track", "digit": "9"}}
    assert s.receive_text(json.dumps(msg)) == [PushDigit("9", "caller", 1.0)]


def test_mark_and_stop():
    s = started()
    s.receive_text(start())
    mark = {"event": "mark", "sequenceNumber": "2", "streamSid": SID, "mark": {"name": "greeting"}}
    assert s.receive_text(json.dumps(mark)) == []
    assert s.marks == ["greeting"]
    stop = {"event": "stop", "sequenceNumber": "3", "streamSid": SID, "stop": {"accountSid": ACCOUNT, "callSid": CALL}}
    assert s.receive_text(json.dumps(stop)) == [EndCall("stop")]
    assert s.receive_text(media(4, 1, 0, b"\xff")) == []  # after stop: nothing


def test_sequence_skip_is_logged_not_fatal():
    s = started()
    s.receive_text(start())
    s.receive_text(media(2, 1, 0, b"\xff" * 160))
    assert s.receive_text(media(5, 2, 20, b"\xff" * 160)) == [PushAudio(b"\xff" * 160, "caller")]
    assert s.sequence_gaps == 1


def test_unknown_event_is_ignored():
    s = started()
    s.receive_text(start())
    assert s.receive_text('{"event": "futureThing", "sequenceNumber": "2"}') == []
    assert s.state == "started"


@pytest.mark.parametrize(
    "message, code",
    [
        ("{not json", "malformed_message"),
        ("[1, 2]", "malformed_message"),
        ('{"nothing": 1}', "malformed_message"),
        (media(1, 1, 0, b"\xff"), "unexpected_message"),  # before start
    ],
)
def test_malformed_before_start(message, code):
    s = started()
    [a] = s.receive_text(message)
    assert isinstance(a, EndCall) and a.reason == "error" and a.code == code and a.error


def test_malformed_media_and_formats():
    def after_start(msg: str, **kw):
        s = started()
        s.receive_text(start(**kw))
        return s.receive_text(msg)

    bad_b64 = json.dumps({"event": "media", "sequenceNumber": "2", "streamSid": SID,
                          "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "!!not base64!!"}})
    [a] = after_start(bad_b64)
    assert a.code == "malformed_message" and "base64" in a.error
    [a] = after_start(media(2, 1, 0, b"\xff", track="outbound"))  # not a track of this stream
    assert a.code == "malformed_message"
    [a] = after_start(media(2, 1, 7_200_000, b"\xff"))  # two hours ahead (over max_gap_s): corrupt
    assert a.code == "malformed_message" and "jumps" in a.error
    other_sid = json.loads(media(2, 1, 0, b"\xff"))
    other_sid["streamSid"] = "MZother"
    [a] = after_start(json.dumps(other_sid))
    assert "does not match" in a.error
    s = started()
    [a] = s.receive_text(start(fmt={"encoding": "audio/x-l16", "sampleRate": 16000, "channels": 1}))
    assert isinstance(a, EndCall) and a.reason == "error"
    s = started()
    [a] = s.receive_text(start(fmt={"encoding": "audio/x-alaw", "sampleRate": 8000, "channels": 1}))
    assert a.code == "unsupported_media"
    s = started()
    [a] = s.receive_bytes(b"\x00\x01")
    assert a.code == "malformed_message"


def test_connection_lost_mid_call_ends_it():
    s = started()
    s.receive_text(start())
    assert s.connection_lost() == [EndCall("disconnect")]
    s2 = started()
    assert s2.connection_lost() == []
