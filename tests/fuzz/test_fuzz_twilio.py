"""Twilio Media Streams under hostile input: only ProtocolError-shaped endings, bounded audio and logs."""

from __future__ import annotations

import base64
import json

from hypothesis import given
from hypothesis import strategies as st

from fuzzwire import FUZZ, captured_logs, check_actions, feed, wire_text
from voicetriage.protocols.actions import EndCall, StartCall
from voicetriage.protocols.machine import close_code_for
from voicetriage.protocols.twilio import TwilioStream

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
CONNECTED = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
START = {
    "event": "start", "sequenceNumber": "1", "streamSid": SID,
    "start": {"accountSid": "AC" + "0" * 32, "streamSid": SID, "callSid": "CA" + "1" * 32,
              "tracks": ["inbound", "outbound"], "customParameters": {"caller": "+15551234", "language": "en-US"},
              "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
}
MEDIA = {"event": "media", "sequenceNumber": "2", "streamSid": SID,
         "media": {"track": "inbound", "chunk": "1", "timestamp": "20",
                   "payload": base64.b64encode(b"\xff" * 160).decode()}}
DTMF = {"event": "dtmf", "sequenceNumber": "3", "streamSid": SID, "dtmf": {"track": "inbound_track", "digit": "5"}}
MARK = {"event": "mark", "sequenceNumber": "4", "streamSid": SID, "mark": {"name": "greeting"}}
STOP = {"event": "stop", "sequenceNumber": "5", "streamSid": SID, "stop": {"accountSid": "AC", "callSid": "CA"}}

later = st.one_of(*(wire_text(m, 2) for m in (MEDIA, MEDIA, MEDIA, DTMF, MARK, STOP)))


def run(stream: TwilioStream, texts: list[str]) -> None:
    with captured_logs() as logs:
        for text in texts:
            actions = feed(lambda: stream.receive_text(text), logs)
            check_actions(actions, input_bytes=len(text), max_gap_s=stream.max_gap_s)
            for a in actions:
                if isinstance(a, EndCall) and a.code is not None:
                    close_code_for(a.code)
                if isinstance(a, StartCall):
                    assert a.info.call_id.isprintable() and len(a.info.call_id) <= 128
        feed(stream.connection_lost, logs)


@FUZZ
@given(wire_text(CONNECTED), wire_text(START), st.lists(later, max_size=6))
def test_any_stream_of_messages(connected, start, rest):
    run(TwilioStream(), [connected, start, *rest])


@FUZZ
@given(st.lists(later, max_size=6))
def test_media_after_a_good_start(rest):
    s = TwilioStream()
    run(s, ['{"event": "connected"}', json.dumps(START), *rest])


@FUZZ
@given(st.binary(max_size=2000))
def test_binary_frames_end_the_stream(data):
    s = TwilioStream()
    with captured_logs() as logs:
        [end] = feed(lambda: s.receive_bytes(data), logs)
    assert isinstance(end, EndCall) and end.code == "malformed_message"
