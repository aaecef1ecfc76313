"""Issue 11's reproducers, one test each, at the sans-I/O level (no sockets, no model).

Each one raised an unhandled exception (a 1011 close), materialised gigabytes of zeros,
or flooded or forged the log on main before the fix it names.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from fuzzwire import captured_logs, check_logs
from voicetriage.audio.codecs import AudioSpec, StreamDecoder
from voicetriage.core.errors import AudioFormatError
from voicetriage.protocols.actions import EndCall, EndUtterance, PushDigit, PushGap, Send, StartCall
from voicetriage.protocols.audiohook import AudioHookSession
from voicetriage.protocols.machine import CLOSE_INVALID_DATA, close_code_for
from voicetriage.protocols.native import NativeConnection
from voicetriage.protocols.twilio import TwilioStream

HUGE = "9" * 4301  # one digit over Python's int-from-text limit
SESSION = "30b0e395-84d3-4570-ac13-9a62d8f514c0"
ORG = "d7934305-0972-4844-938e-9060eef73d05"
SID = "MZ18ad3ab5a668481ce02b83e7395059f0"


# -- AudioHook ------------------------------------------------------------------
class Hook:
    """An AudioHook client that numbers its messages; ``raw`` overrides JSON text pieces."""

    def __init__(self) -> None:
        self.s = AudioHookSession(SESSION, organization_id=ORG)
        self.seq = 0

    def text(self, type_: str, params: dict, position: str = "PT0S", **top) -> str:
        self.seq += 1
        return json.dumps({"version": "2", "id": SESSION, "type": type_, "seq": self.seq, "serverseq": self.s.seq,
                           "position": position, "parameters": params, **top})

    def send(self, type_: str, params: dict, position: str = "PT0S", **top) -> list:
        actions = self.s.receive_text(self.text(type_, params, position, **top))
        if any(isinstance(a, StartCall) for a in actions):
            actions += self.s.call_started()
        return actions

    def open(self, media: list | None = None) -> list:
        return self.send("open", {
            "organizationId": ORG, "conversationId": "090eaa2f-72fa-480a-83e0-8667ff89c0ec",
            "participant": {"id": "883efee8-3d6c-4537-b500-6d7ca4b92fa0", "ani": "+15555551234", "aniName": "",
                            "dnis": "+15555554321"},
            "media": media or [{"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}]})


def disconnected(actions: list) -> bool:
    return any(isinstance(a, Send) and json.loads(a.message)["type"] == "disconnect" for a in actions)


def test_audiohook_discard_of_1800_s_is_counted_not_materialised():
    """Issue 11: one 189-byte ``discarded`` (PT1800S) stalled the loop 27.6 s and took 6.5 GB.
    Now it is one gap of 1800 s that the session counts and jumps its clock over (no audio
    for it: tests/test_gaps.py), so the call clock stays the client's stream position: a
    transcript after it is placed 1800 s on, and so is a digit."""
    c = Hook()
    c.open()
    c.s.receive_bytes(b"\xff" * 8000)  # 1 s of audio
    text = c.text("discarded", {"start": "PT1S", "discarded": "PT1800S"}, "PT1801S")
    assert len(text) < 300
    actions = c.s.receive_text(text)
    assert actions == [PushGap(1800.0)]
    assert c.s.samples == 1801 * 8000  # the stream position counts all of it
    # a final the session timed at call clock 1802.0 s is at stream position 1802 s
    final = SimpleNamespace(kind="final", text="hello", track="caller", start=1802.0, end=1802.5, avg_logprob=-0.1,
                            language="en", utterance=1)
    [event] = c.s.on_event(final)
    assert json.loads(event.message)["parameters"]["entities"][0]["data"]["offset"] == "PT1802S"
    # a final from before the discard keeps its place
    early = SimpleNamespace(**{**vars(final), "start": 0.5, "end": 0.9, "utterance": 0})
    [event] = c.s.on_event(early)
    assert json.loads(event.message)["parameters"]["entities"][0]["data"]["offset"] == "PT0.5S"
    [digit] = c.send("dtmf", {"digit": "5"}, "PT1801S")
    assert digit == PushDigit("5", "caller", 1801.0)


def test_audiohook_huge_durations_are_refused_not_computed():
    c = Hook()
    c.open()
    actions = c.send("discarded", {"start": "PT0S", "discarded": "PT" + "9" * 60000 + "S"}, "PT0S")
    assert disconnected(actions) and not any(isinstance(a, PushGap) for a in actions)


@pytest.mark.parametrize("field", ["seq", "serverseq", "position", "id", "version", "type", "parameters"])
def test_audiohook_integer_over_4300_digits_in_any_field(field):
    c = Hook()
    c.open()
    msg = json.loads(c.text("ping", {}))
    msg[field] = "@@"
    text = json.dumps(msg).replace('"@@"', HUGE)
    with captured_logs() as logs:
        actions = c.s.receive_text(text)
    check_logs(logs)
    assert disconnected(actions)
    [end] = [a for a in actions if isinstance(a, EndCall)]
    assert end.code == "protocol_error"


def test_audiohook_integer_over_4300_digits_in_a_parameter():
    c = Hook()
    c.open()
    text = c.text("error", {"code": 0, "message": "x"}).replace('"code": 0', f'"code": {HUGE}')
    assert disconnected(c.s.receive_text(text))


@pytest.mark.parametrize("channels", [[{}], [["external"]], [["external", "internal"]], [None], [{"a": 1}, "external"]])
def test_audiohook_channels_that_are_not_names(channels):
    """``channels: [{}]`` and a list where a channel name belongs raised TypeError (unhashable)."""
    c = Hook()
    actions = c.open([{"type": "audio", "format": "PCMU", "channels": channels, "rate": 8000}])
    assert disconnected(actions) and not any(isinstance(a, StartCall) for a in actions)


@pytest.mark.parametrize("field", ["ani", "aniName", "dnis"])
def test_audiohook_participant_fields_cannot_forge_or_flood(field):
    for bad in ("+1555\n2026-12-03 WARNING forged", "5" * 100_000):
        c = Hook()
        text = c.text("open", {
            "organizationId": ORG, "conversationId": "090eaa2f-72fa-480a-83e0-8667ff89c0ec",
            "participant": {"id": "883efee8-3d6c-4537-b500-6d7ca4b92fa0", "ani": "1", "aniName": "", "dnis": "2",
                            field: bad},
            "media": [{"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}]})
        with captured_logs() as logs:
            actions = c.s.receive_text(text)
        check_logs(logs)
        assert disconnected(actions) or len(text) > 65535


def test_audiohook_client_error_message_is_escaped_in_the_log():
    c = Hook()
    c.open()
    with captured_logs() as logs:
        c.send("error", {"code": 500, "message": "boom\n2026-12-03 ERROR forged " + "x" * 50_000})
    check_logs(logs)
    assert any("boom" in r.getMessage() for r in logs.records)


# -- Twilio ---------------------------------------------------------------------
def twilio_start(**over) -> dict:
    start = {"accountSid": "AC1", "streamSid": SID, "callSid": "CA1", "tracks": ["inbound"],
             "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}
    start.update(over)
    return {"event": "start", "sequenceNumber": "1", "streamSid": start["streamSid"], "start": start}


def started() -> TwilioStream:
    s = TwilioStream()
    s.receive_text('{"event": "connected"}')
    [a] = s.receive_text(json.dumps(twilio_start()))
    assert isinstance(a, StartCall)
    return s


def ends_malformed(actions: list) -> bool:
    [end] = actions
    return (isinstance(end, EndCall) and end.code == "malformed_message"
            and close_code_for(end.code) == CLOSE_INVALID_DATA)


@pytest.mark.parametrize("literal", [HUGE, f'"{HUGE}"', f"-{HUGE}", '"99999999999999999999999"'])
def test_twilio_sequence_number_over_4300_digits(literal):
    s = started()
    text = json.dumps({"event": "mark", "sequenceNumber": "@@", "mark": {"name": "m"}}).replace('"@@"', literal)
    with captured_logs() as logs:
        assert ends_malformed(s.receive_text(text))
    check_logs(logs)


def test_twilio_media_timestamp_over_4300_digits():
    s = started()
    media = {"event": "media", "media": {"track": "inbound", "timestamp": "@@", "payload": "//8="}}
    assert ends_malformed(s.receive_text(json.dumps(media).replace('"@@"', f'"{HUGE}"')))


@pytest.mark.parametrize("tracks", [[["inbound"]], [{"a": 1}], ["inbound", ["outbound"]], [None]])
def test_twilio_list_where_a_track_name_belongs_in_start(tracks):
    s = TwilioStream()
    assert ends_malformed(s.receive_text(json.dumps(twilio_start(tracks=tracks))))


@pytest.mark.parametrize("event", ["media", "dtmf"])
def test_twilio_list_where_a_track_name_belongs_in_media_and_dtmf(event):
    s = started()
    body = {"track": ["inbound"], "payload": "//8=", "digit": "1"}
    assert ends_malformed(s.receive_text(json.dumps({"event": event, event: body})))


def test_twilio_channels_of_empty_objects():
    s = TwilioStream()
    [end] = s.receive_text(json.dumps(twilio_start(mediaFormat={"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                                               "channels": [{}]})))
    assert isinstance(end, EndCall) and end.code == "unsupported_channels"


def test_twilio_megabyte_stream_sid_is_refused_and_the_log_stays_short():
    """Issue 11: a 1 MiB streamSid turned 1.8 KB of (compressed) input into 23 MB of log."""
    big = "M" * (1 << 20)
    s = TwilioStream()
    with captured_logs() as logs:
        assert ends_malformed(s.receive_text(json.dumps(twilio_start(streamSid=big))))
        s2 = started()
        for _ in range(20):  # a media message naming another stream, again and again
            s2.receive_text(json.dumps({"event": "media", "streamSid": big, "media": {"payload": "//8="}}))
    check_logs(logs)
    assert sum(len(r.getMessage()) for r in logs.records) < 4000


@pytest.mark.parametrize("sid", [SID + "\n2026-12-03 WARNING forged", SID + "\x1b[2J"])
def test_twilio_control_characters_in_sids(sid):
    s = TwilioStream()
    assert ends_malformed(s.receive_text(json.dumps(twilio_start(streamSid=sid))))
    assert ends_malformed(TwilioStream().receive_text(json.dumps(twilio_start(callSid=sid))))


def test_twilio_marks_are_bounded():
    s = started()
    for i in range(1000):
        s.receive_text(json.dumps({"event": "mark", "mark": {"name": f"m{i}" * 100}}))
    assert len(s.marks) <= 64 and all(len(m) <= 256 for m in s.marks)


# -- native ---------------------------------------------------------------------
def native_error(actions: list) -> str:
    [send] = actions
    msg = json.loads(send.message)
    assert msg["type"] == "error" and not msg["fatal"]
    return msg["code"]


@pytest.mark.parametrize("call_id", ["c1\n2026-12-02 WARNING forged line", "c1\r", "c\x00", "c" * 129])
def test_native_newline_in_call_id(call_id):
    c = NativeConnection(model="m", max_message_bytes=1 << 20)
    assert native_error(c.receive_text(json.dumps({"type": "start", "call_id": call_id}))) == "bad_field"


@pytest.mark.parametrize("field, value", [("sample_rate", HUGE), ("channels", HUGE), ("call_id", HUGE)])
def test_native_integer_over_4300_digits(field, value):
    c = NativeConnection(model="m", max_message_bytes=1 << 20)
    text = json.dumps({"type": "start", field: "@@"}).replace('"@@"', value)
    assert native_error(c.receive_text(text)) == "bad_json"


def test_native_channels_of_empty_objects_and_tracks_of_lists():
    c = NativeConnection(model="m", max_message_bytes=1 << 20)
    assert native_error(c.receive_text(json.dumps({"type": "start", "channels": [{}]}))) == "unsupported_channels"
    assert native_error(c.receive_text(json.dumps({"type": "start", "tracks": [["caller"]]}))) == "bad_field"


def test_native_dtmf_digit_is_checked_by_the_parser():
    c = NativeConnection(model="m", max_message_bytes=1 << 20)
    c.receive_text(json.dumps({"type": "start"}))
    c.call_started()
    assert native_error(c.receive_text(json.dumps({"type": "dtmf", "digit": "Z"}))) == "bad_dtmf"
    assert c.receive_text(json.dumps({"type": "dtmf", "digit": "a"})) == [PushDigit("A", None)]


# -- codecs -----------------------------------------------------------------------
@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -1.0, 1e12])
def test_silence_refuses_what_it_cannot_or_must_not_make(seconds):
    d = StreamDecoder(AudioSpec("mulaw", 8000, 1))
    with pytest.raises(AudioFormatError):
        d.silence(seconds)



def test_log_values_are_capped_after_escaping():
    """atheris found it: 120 NUL bytes in a header became 480 characters of '\\x00' in a refusal."""
    from voicetriage.core.logsafe import safe
    from voicetriage.protocols.audiohook_auth import AudioHookAuth

    assert len(safe("\x00" * 1000, 120)) <= 140 and "\n" not in safe("a\nb")
    result = AudioHookAuth({"key": ""}).check("GET", "/audiohook", {
        "Audiohook-Session-Id": SESSION, "X-API-KEY": "key", "Signature-Input": "\x00" * 2000})
    assert not result.ok and result.status == 400 and len(result.reason) <= 200
