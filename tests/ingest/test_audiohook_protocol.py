"""AudioHook session state machine and connection authentication (no sockets, no model)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

import pytest

from voicetriage.core.events import Final
from voicetriage.protocols.actions import (
    EndCall,
    EndUtterance,
    PushAudio,
    PushDigit,
    PushGap,
    Send,
    StartCall,
)
from voicetriage.protocols.audiohook import (
    _ENTITY_NS,
    AudioHookSession,
    format_duration,
    parse_duration,
    word_tokens,
)
from voicetriage.protocols.audiohook_auth import (
    AudioHookAuth,
    parse_dictionary,
    serialize_inner_list,
    sign,
)

SESSION = "30b0e395-84d3-4570-ac13-9a62d8f514c0"
ORG = "d7934305-0972-4844-938e-9060eef73d05"
CONV = "090eaa2f-72fa-480a-83e0-8667ff89c0ec"
PARTICIPANT = "883efee8-3d6c-4537-b500-6d7ca4b92fa0"
STEREO = {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}
EXTERNAL = {"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}
INTERNAL = {"type": "audio", "format": "PCMU", "channels": ["internal"], "rate": 8000}


class Client:
    """Builds client messages exactly as the protocol defines them (seq, serverseq, position)."""

    def __init__(self, session: AudioHookSession) -> None:
        self.session = session
        self.seq = 0
        self.serverseq = 0
        self.samples = 0  # position in 8 kHz samples
        self.received: list[dict] = []
        self.acked = 0

    def send(self, type_: str, parameters: dict, _accepted: bool = True, **override) -> list:
        """``_accepted=False``: a message the server must reject, so its seq is not acknowledged."""
        self.seq += 1
        self.acked = self.seq if _accepted else self.seq - 1
        msg = {"version": "2", "id": SESSION, "type": type_, "seq": self.seq, "serverseq": self.serverseq,
               "position": format_duration(self.samples / 8000), "parameters": parameters, **override}
        actions = self.session.receive_text(json.dumps(msg))
        if any(isinstance(a, StartCall) for a in actions):  # as the glue does once the call is open
            actions += self.session.call_started()
        return self._collect(actions)

    def audio(self, data: bytes, channels: int = 1) -> list:
        self.acked = self.seq
        self.samples += len(data) // channels
        return self._collect(self.session.receive_bytes(data))

    def _collect(self, actions: list) -> list:
        for a in actions:
            if isinstance(a, Send):
                msg = json.loads(a.message)
                # every server message: version 2, our id, seq one more than the last, clientseq = our last seq
                assert msg["version"] == "2" and msg["id"] == SESSION
                assert msg["seq"] == self.serverseq + 1
                assert msg["clientseq"] == self.acked
                self.serverseq = msg["seq"]
                self.received.append(msg)
        return actions

    def open(self, media=(STEREO, EXTERNAL, INTERNAL), **params) -> list:
        p = {"organizationId": ORG, "conversationId": CONV,
             "participant": {"id": PARTICIPANT, "ani": "+1-555-555-1234", "aniName": "", "dnis": "+1-555-555-4321"},
             "media": list(media), "language": "en-US", **params}
        return self.send("open", p)


def sent(actions) -> list[dict]:
    return [json.loads(a.message) for a in actions if isinstance(a, Send)]


def new(**kw) -> tuple[AudioHookSession, Client]:
    s = AudioHookSession(SESSION, organization_id=ORG, **kw)
    return s, Client(s)


def test_durations():
    assert format_duration(0) == "PT0S"
    assert format_duration(1.5) == "PT1.5S"
    assert format_duration(0.000125) == "PT0.000125S"
    assert parse_duration("PT12.34S") == parse_duration("PT12.340S")
    for bad in ("12S", "PT-1S", "PT1.2.3S", "P1S", 5):
        with pytest.raises(Exception):
            parse_duration(bad)


def test_open_selects_stereo_pcmu_and_starts_the_call():
    s, c = new()
    actions = c.open()
    start, opened = actions
    assert isinstance(start, StartCall)
    assert start.tracks == ("caller", "agent") and start.spec.channels == 2 and start.spec.encoding == "mulaw"
    assert start.info.caller_id == "+1-555-555-1234" and start.info.language_hint == "en-US"
    assert start.info.platform == "audiohook" and start.info.call_id == SESSION
    assert start.info.platform_ids["conversationId"] == CONV
    assert opened.message and json.loads(opened.message)["type"] == "opened"
    assert c.received[-1]["parameters"] == {"media": [STEREO], "startPaused": False}


def test_media_preference_and_refusal():
    s, c = new()
    c.open(media=(INTERNAL, EXTERNAL))
    assert c.received[-1]["parameters"]["media"] == [EXTERNAL]
    s, c = new()
    c.open(media=(INTERNAL,))
    assert c.received[-1]["parameters"]["media"] == [INTERNAL] and s.tracks == ("agent",)
    s, c = new()
    actions = c.open(media=({"type": "audio", "format": "L16", "channels": ["external"], "rate": 8000},))
    assert not any(isinstance(a, StartCall) for a in actions)
    assert c.received[-1]["type"] == "disconnect" and c.received[-1]["parameters"]["reason"] == "error"


def test_supported_languages_and_probe():
    s, c = new(supported_languages=("en-US", "zh-CN"))
    actions = c.open(supportedLanguages=True, conversationId="00000000-0000-0000-0000-000000000000")
    assert not any(isinstance(a, StartCall) for a in actions)  # a connection probe is not a call
    assert c.received[-1]["parameters"]["supportedLanguages"] == ["en-US", "zh-CN"]
    assert c.audio(b"\xff" * 3200, 2) == []
    c.send("close", {"reason": "end"})
    assert c.received[-1]["type"] == "closed"


def test_audio_ping_update_pause_resume_discard_close():
    s, c = new()
    c.open(media=(EXTERNAL,))
    assert c.audio(b"\x01" * 1600) == [PushAudio(b"\x01" * 1600)]
    c.send("ping", {})
    assert c.received[-1]["type"] == "pong" and c.received[-1]["clientseq"] == c.seq
    c.send("ping", {"rtt": "PT0.012S"})
    assert s.rtt == "PT0.012S"
    # an update and a pause end the utterance in progress (the reply follows the split)
    assert c.send("update", {"language": "es-ES"})[0] == EndUtterance()
    assert c.received[-1]["type"] == "updated" and s.language == "es-ES"
    assert c.send("paused", {}) == [EndUtterance()] and s.state == "paused"
    assert c.send("paused", {}) == []  # the reference client says it twice: one split
    # 2 s passed while paused: the client resumes at start 0.2 s with 2 s discarded
    c.samples = 1600 + 16000
    assert c.send("resumed", {"start": "PT0.2S", "discarded": "PT2S"}) == [PushGap(2.0)]  # the session ends the utterance (a gap over 1 s)
    assert s.state == "active"
    c.audio(b"\x02" * 800)
    c.samples += 4000
    # a short discard is a hole inside speech: the clock runs on, the utterance does not end
    assert c.send("discarded", {"start": "PT2.3S", "discarded": "PT0.5S"}) == [PushGap(0.5, hold=True)]
    assert s.position_mismatches == 0
    assert c.send("dtmf", {"digit": "9"}) == [PushDigit("9", "caller", 2.8)]
    [end] = c.send("close", {"reason": "end"})
    assert end == EndCall("stop") and s.state == "closing"
    # finals flushed at close still go out as events, then 'closed'
    final = Final("x", "caller", 0, 0.5, 1.7, " Hello there.", "en", 0.99, -0.1, 0.01, "stop", 1.0)
    [ev] = sent(c._collect(s.on_event(final)))
    entity = ev["parameters"]["entities"][0]
    assert ev["type"] == "event" and entity["type"] == "transcript"
    assert entity["data"]["channelId"] == 0 and entity["data"]["isFinal"] is True
    assert "channel" not in entity["data"]
    assert entity["data"]["offset"] == "PT0.5S" and entity["data"]["duration"] == "PT1.2S"
    alt = entity["data"]["alternatives"][0]
    assert alt["interpretations"] == [{"type": "display", "transcript": "Hello there.", "tokens": [
        {"type": "word", "value": "Hello", "confidence": 0.905, "offset": "PT0.5S", "duration": "PT0.6S",
         "language": "en-US"},
        {"type": "word", "value": "there.", "confidence": 0.905, "offset": "PT1.1S", "duration": "PT0.6S",
         "language": "en-US"},
    ]}]
    assert alt["languages"] == ["en-US"] and alt["confidence"] == 0.905
    c._collect(s.finish())
    assert c.received[-1]["type"] == "closed"
    assert [m["seq"] for m in c.received] == list(range(1, len(c.received) + 1))
    assert s.on_event(final) == []  # closed: nothing more


@dataclass(frozen=True)
class Hint:
    kind: ClassVar[str] = "hint"
    call_id: str
    queue: str
    reasons: tuple


def test_hint_events_are_sent_generically():
    s, c = new()
    c.open(media=(EXTERNAL,))
    [ev] = sent(s.on_event(Hint("x", "senior_agent", ("age", "slow_speech"))))
    assert ev["parameters"]["entities"] == [
        {"type": "voicetriage.hint", "data": {"call_id": "x", "queue": "senior_agent", "reasons": ["age", "slow_speech"]}}
    ]


def test_event_kinds_are_configurable_and_partials_share_the_final_id():
    from voicetriage.core.events import Partial

    s, c = new()
    c.open(media=(EXTERNAL,))

    @dataclass(frozen=True)
    class Other:
        kind: ClassVar[str] = "signal"
        call_id: str

    assert s.on_event(Other("x")) == []  # not in the default kinds (final, hint)
    assert s.on_event(Partial("x", "caller", 3, 1.0, 2.0, "hello", " wor", "en", 0.9)) == []
    s, c = new(event_kinds=("final", "partial", "signal"))
    c.open(media=(EXTERNAL,))
    [p] = sent(c._collect(s.on_event(Partial("x", "caller", 3, 1.0, 2.0, "hello", " wor", "en", 0.9))))
    data = p["parameters"]["entities"][0]["data"]
    assert data["isFinal"] is False and data["alternatives"][0]["interpretations"][0]["transcript"] == "hello wor"
    [f] = sent(c._collect(s.on_event(Final("x", "caller", 3, 1.0, 2.5, "hello world", "en", 0.9, -0.2, 0.0, "silence"))))
    assert f["parameters"]["entities"][0]["data"]["id"] == data["id"]
    [o] = sent(c._collect(s.on_event(Other("x"))))
    assert o["parameters"]["entities"] == [{"type": "voicetriage.signal", "data": {"call_id": "x"}}]


@pytest.mark.parametrize(
    "mutate, info",
    [
        (lambda c: c._collect(c.session.receive_text("{oops")), "not valid JSON"),
        (lambda c: c.send("ping", {}, seq=5, _accepted=False), "Invalid seq"),
        (lambda c: c.send("ping", {}, serverseq=9), "serverseq"),
        (lambda c: c.send("ping", {}, id="11111111-2222-3333-4444-555555555555"), "identifier mismatch"),
        (lambda c: c.send("ping", {}, version="1", _accepted=False), "well-formed"),
        (lambda c: c.send("ping", {}, position="3 seconds", _accepted=False), "well-formed"),
        (lambda c: c.send("frobnicate", {}), "not a supported client message"),
        (lambda c: c.send("update", {"language": 7}), "update"),
        (lambda c: c.send("close", {"reason": "bored"}), "close"),
        (lambda c: c.audio(b"\x00" * 3), "not a valid audio frame"),
        (lambda c: c._collect(c.session.receive_text("x" * 70000)), "too large"),
    ],
)
def test_protocol_violations_get_disconnect_error_then_close_works(mutate, info):
    s, c = new()
    c.open()
    actions = mutate(c)
    disconnect = c.received[-1]
    assert disconnect["type"] == "disconnect" and disconnect["parameters"]["reason"] == "error"
    assert info in disconnect["parameters"]["info"]
    assert any(isinstance(a, EndCall) and a.reason == "error" for a in actions)
    assert s.state == "failed"
    # the client answers a disconnect with a close transaction
    c.seq = s.clientseq
    c.send("close", {"reason": "disconnect"})
    assert c.received[-1]["type"] == "closed"


def test_audio_before_open_and_messages_before_open():
    s, c = new()
    c.audio(b"\xff" * 160)
    assert c.received[-1]["type"] == "disconnect" and "state preparing" in c.received[-1]["parameters"]["info"]
    s, c = new()
    c.send("paused", {})
    assert c.received[-1]["type"] == "disconnect"


def test_refused_start_gets_disconnect_with_the_next_seq_and_no_opened():
    s = AudioHookSession(SESSION, organization_id=ORG)
    c = Client(s)
    c.seq += 1
    msg = {"version": "2", "id": SESSION, "type": "open", "seq": 1, "serverseq": 0, "position": "PT0S",
           "parameters": {"organizationId": ORG, "conversationId": CONV, "media": [EXTERNAL],
                          "participant": {"id": PARTICIPANT, "ani": "", "aniName": "", "dnis": ""}}}
    [start] = s.receive_text(json.dumps(msg))
    assert isinstance(start, StartCall)
    c.acked = 1
    c._collect(s.abort("server is at its limit of 1 calls", "server_busy"))  # what the glue does on refusal
    assert [m["type"] for m in c.received] == ["disconnect"] and c.received[0]["seq"] == 1
    assert s.call_started() == []


def test_organization_mismatch_is_unauthorized():
    s = AudioHookSession(SESSION, organization_id="aaaaaaaa-0972-4844-938e-9060eef73d05")
    c = Client(s)
    actions = c.open()
    assert not any(isinstance(a, StartCall) for a in actions)
    assert c.received[-1]["type"] == "disconnect" and c.received[-1]["parameters"]["reason"] == "unauthorized"


def test_open_parameter_validation():
    s, c = new()
    c.send("open", {"organizationId": ORG, "conversationId": "not-a-uuid", "participant": {}, "media": []})
    assert c.received[-1]["type"] == "disconnect" and "conversationId" in c.received[-1]["parameters"]["info"]


def test_connection_lost_ends_a_started_call():
    s, c = new()
    c.open()
    assert s.connection_lost() == [EndCall("disconnect")]


# --- authentication -------------------------------------------------------------------------

# The example request of the AudioHook protocol specification ("Establishing Connection"),
# as the reference implementation's signature tests use it.
SPEC_API_KEY = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh"
SPEC_SECRET = "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU="
SPEC_HEADERS = [
    ("Host", "audiohook.example.com"),
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Key", "SSdtIGEgV2ViU29ja2V0IQ=="),
    ("Sec-WebSocket-Version", "13"),
    ("User-Agent", "GenesysCloud-AudioHook-Client"),
    ("Audiohook-Organization-Id", "d7934305-0972-4844-938e-9060eef73d05"),
    ("Audiohook-Correlation-Id", "e160e428-53e2-487c-977d-96989bf5c99d"),
    ("Audiohook-Session-Id", "30b0e395-84d3-4570-ac13-9a62d8f514c0"),
    ("X-API-KEY", SPEC_API_KEY),
    ("Signature", "sig1=:NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4=:"),
    ("Signature-Input", 'sig1=("@request-target" "@authority" "audiohook-organization-id" '
                        '"audiohook-session-id" "audiohook-correlation-id" "x-api-key");'
                        'keyid="SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh";nonce="VGhpc0lzQVVuaXF1ZU5vbmNl";'
                        'alg="hmac-sha256";created=1641013200;expires=3282026430'),
]
SPEC_TARGET = "/api/v1/voicebiometrics/ws"
SPEC_BASE = (
    '"@request-target": /api/v1/voicebiometrics/ws\n'
    '"@authority": audiohook.example.com\n'
    '"audiohook-organization-id": d7934305-0972-4844-938e-9060eef73d05\n'
    '"audiohook-session-id": 30b0e395-84d3-4570-ac13-9a62d8f514c0\n'
    '"audiohook-correlation-id": e160e428-53e2-487c-977d-96989bf5c99d\n'
    '"x-api-key": SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh\n'
    '"@signature-params": ("@request-target" "@authority" "audiohook-organization-id" '
    '"audiohook-session-id" "audiohook-correlation-id" "x-api-key");keyid="SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh";'
    'nonce="VGhpc0lzQVVuaXF1ZU5vbmNl";alg="hmac-sha256";created=1641013200;expires=3282026430'
)


def spec_auth(**kw) -> AudioHookAuth:
    return AudioHookAuth({SPEC_API_KEY: SPEC_SECRET}, clock=lambda: 1641013201.0, **kw)


def replace(headers, name, value):
    return [(k, value if k.lower() == name.lower() else v) for k, v in headers]


def test_spec_example_signature_base_and_hmac():
    # the test vector derived by hand from the specification: base string -> HMAC-SHA256
    mac = hmac.new(base64.b64decode(SPEC_SECRET), SPEC_BASE.encode(), hashlib.sha256).digest()
    assert base64.b64encode(mac).decode() == "NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4="
    inner = parse_dictionary(dict(SPEC_HEADERS)["Signature-Input"])["sig1"]
    assert SPEC_BASE.endswith(serialize_inner_list(inner))


def test_spec_example_request_is_accepted():
    r = spec_auth().check("GET", SPEC_TARGET, SPEC_HEADERS)
    assert r.ok and r.api_key == SPEC_API_KEY


def test_sign_reproduces_the_spec_example():
    h = dict(SPEC_HEADERS)
    values = {"@request-target": SPEC_TARGET, "@authority": "audiohook.example.com",
              **{k.lower(): h[k] for k in ("Audiohook-Organization-Id", "Audiohook-Session-Id",
                                           "Audiohook-Correlation-Id", "X-API-KEY")}}
    out = sign(api_key=SPEC_API_KEY, secret_b64=SPEC_SECRET, values=values, created=1641013200,
               expires=3282026430, nonce="VGhpc0lzQVVuaXF1ZU5vbmNl")
    assert out == {"Signature-Input": h["Signature-Input"], "Signature": h["Signature"]}


@pytest.mark.parametrize(
    "headers, target, reason",
    [
        (replace(SPEC_HEADERS, "Signature", "sig1=:NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJH4=:"), SPEC_TARGET, "HMAC"),
        (SPEC_HEADERS, "/api/v1/other/ws", "HMAC"),
        (replace(SPEC_HEADERS, "Host", "evil.example.com"), SPEC_TARGET, "HMAC"),
        (replace(SPEC_HEADERS, "Audiohook-Correlation-Id", "e160e428-53e2-487c-977d-96989bf5c99e"), SPEC_TARGET, "HMAC"),
        ([(k, v) for k, v in SPEC_HEADERS if k != "Signature"], SPEC_TARGET, "both"),
        ([(k, v) for k, v in SPEC_HEADERS if not k.startswith("Signature")], SPEC_TARGET, "not signed"),
        (replace(SPEC_HEADERS, "Signature-Input", "sig1=(\"x-api-key\");keyid=\"" + SPEC_API_KEY
                 + "\";nonce=\"VGhpc0lzQVVuaXF1ZU5vbmNl\";alg=\"hmac-sha256\";created=1641013200"), SPEC_TARGET, "cover"),
        (replace(SPEC_HEADERS, "Signature-Input", "sig1=(;;garbage"), SPEC_TARGET, "unparsable"),
    ],
)
def test_bad_signatures_are_refused_with_401(headers, target, reason):
    r = spec_auth().check("GET", target, headers)
    assert not r.ok and r.status == 401 and reason in r.reason


def test_keys_secrets_expiry_and_replay():
    # wrong API key
    r = spec_auth().check("GET", SPEC_TARGET, replace(SPEC_HEADERS, "X-API-KEY", "bm90IHRoZSBrZXk="))
    assert (r.ok, r.status, r.reason) == (False, 401, "unknown API key")
    r = spec_auth().check("GET", SPEC_TARGET, [(k, v) for k, v in SPEC_HEADERS if k != "X-API-KEY"])
    assert r.status == 401 and "X-API-KEY" in r.reason
    # too old for our window (the spec's created is 2022)
    r = AudioHookAuth({SPEC_API_KEY: SPEC_SECRET}, clock=lambda: 1641013200.0 + 3600).check("GET", SPEC_TARGET, SPEC_HEADERS)
    assert r.status == 401 and "older" in r.reason
    r = AudioHookAuth({SPEC_API_KEY: SPEC_SECRET}, clock=lambda: 1641013100.0).check("GET", SPEC_TARGET, SPEC_HEADERS)
    assert r.status == 401 and "future" in r.reason
    # replayed request: the same nonce twice
    auth = spec_auth()
    assert auth.check("GET", SPEC_TARGET, SPEC_HEADERS).ok
    r = auth.check("GET", SPEC_TARGET, SPEC_HEADERS)
    assert r.status == 401 and "nonce" in r.reason
    # a key configured without secret needs no signature; no keys: open
    unsigned = [(k, v) for k, v in SPEC_HEADERS if not k.startswith("Signature")]
    assert AudioHookAuth({SPEC_API_KEY: ""}).check("GET", SPEC_TARGET, unsigned).ok
    assert AudioHookAuth({}).check("GET", SPEC_TARGET, unsigned).ok
    # AudioHook headers are required in any case
    r = AudioHookAuth({}).check("GET", SPEC_TARGET, [(k, v) for k, v in unsigned if k != "Audiohook-Session-Id"])
    assert r.status == 400


def test_secret_must_be_base64():
    from voicetriage.core.errors import ConfigError

    with pytest.raises(ConfigError, match="base64"):
        AudioHookAuth({"key": "not base64!"})


def _start(actions) -> StartCall:
    [start] = [a for a in actions if isinstance(a, StartCall)]
    return start


def test_session_language_is_the_customers_and_the_agent_detects_its_own():
    s, c = new()
    start = _start(c.open(language="en-US"))  # stereo: external + internal
    assert start.tracks == ("caller", "agent")
    assert start.info.language_hint == "en-US" and start.track_languages == {"agent": None}
    # mono sessions: the customer alone keeps the hint, the agent alone detects
    s, c = new()
    start = _start(c.open(media=(EXTERNAL,), language="zh-CN"))
    assert start.info.language_hint == "zh-CN" and start.track_languages is None
    s, c = new()
    start = _start(c.open(media=(INTERNAL,), language="zh-CN"))
    assert start.tracks == ("agent",) and start.track_languages == {"agent": None}


def test_open_can_set_each_channels_language():
    s, c = new()
    start = _start(c.open(language="en-US", customConfig={"languages": {"internal": "zh-CN", "external": None}}))
    assert start.info.language_hint is None and start.track_languages == {"agent": "zh-CN"}
    assert s.channel_languages == {"external": None, "internal": "zh-CN"}


@pytest.mark.parametrize("languages, info", [
    ({"customer": "en-US"}, "unknown channel 'customer'"),
    ({"internal": "Mandarin"}, "customConfig.languages.internal: 'Mandarin' is not a language code"),
    (["zh-CN"], "customConfig.languages must map a channel"),
])
def test_bad_channel_languages_are_refused(languages, info):
    s, c = new()
    assert not [a for a in c.open(customConfig={"languages": languages}) if isinstance(a, StartCall)]
    assert c.received[-1]["type"] == "disconnect" and info in c.received[-1]["parameters"]["info"]


def _final(track, text, start=1.0, end=2.0, language="en"):
    return Final("x", track, 3, start, end, text, language, 0.99, -0.2, 0.01, "silence", end - start)


def test_channel_id_is_the_index_into_the_opened_channels():
    s, c = new()
    c.open(media=({"type": "audio", "format": "PCMU", "channels": ["internal", "external"], "rate": 8000},))
    assert s.media["channels"] == ["internal", "external"]
    [agent] = sent(s.on_event(_final("agent", "Hi.")))
    [caller] = sent(s.on_event(_final("caller", "Hello.")))
    assert agent["parameters"]["entities"][0]["data"]["channelId"] == 0
    assert caller["parameters"]["entities"][0]["data"]["channelId"] == 1


def test_transcript_entity_bytes():
    """The whole event as it goes on the wire, for a Mandarin final on the agent channel."""
    s, c = new()
    c.open(language="en-US")
    [msg] = s.on_event(_final("agent", "我要转人工。", start=0.5, end=1.7, language="zh"))
    entity_id = str(uuid.uuid5(_ENTITY_NS, f"{SESSION}/agent/3"))
    tok = ('{"type":"word","value":"%s","confidence":0.819,"offset":"PT%sS","duration":"PT0.24S",'
           '"language":"zh-CN"}')
    tokens = ",".join(tok % (w, o) for w, o in zip(["我", "要", "转", "人", "工。"],
                                                   ["0.5", "0.74", "0.98", "1.22", "1.46"]))
    assert msg.message == (
        '{"version":"2","type":"event","id":"%s","seq":2,"clientseq":1,"parameters":{"entities":[{'
        '"type":"transcript","data":{"id":"%s","channelId":1,"isFinal":true,"offset":"PT0.5S",'
        '"duration":"PT1.2S","alternatives":[{"confidence":0.819,"languages":["zh-CN"],'
        '"interpretations":[{"type":"display","transcript":"我要转人工。","tokens":[%s]}]}]}}]}}'
        % (SESSION, entity_id, tokens))


def test_word_tokens_split_the_span_in_order():
    toks = word_tokens("Hello, world. I need help!", Decimal("6.7"), Decimal("2.6"), 0.8)
    assert [t["value"] for t in toks] == ["Hello,", "world.", "I", "need", "help!"]
    offsets = [parse_duration(t["offset"]) for t in toks]
    ends = [o + parse_duration(t["duration"]) for o, t in zip(offsets, toks)]
    assert offsets[0] == Decimal("6.7") and ends[-1] == Decimal("9.3")
    assert offsets[1:] == ends[:-1]  # contiguous, strictly increasing
    # longer words get longer shares (by characters, punctuation not counted)
    assert parse_duration(toks[3]["duration"]) > parse_duration(toks[2]["duration"])
    assert word_tokens("", Decimal(0), Decimal(1), 0.5) == []
    # more words than milliseconds still gives distinct offsets
    tiny = word_tokens("a b c", Decimal(0), Decimal("0.001"), 0.5)
    assert len({t["offset"] for t in tiny}) == 3


def test_discard_follows_the_clients_position():
    """A client that announces a discard its own position does not count (the reference
    suite's does this) moves no clock; a genuine long one is a gap (the session splits there)."""
    s, c = new()
    c.open(media=(EXTERNAL,))
    c.audio(b"\x01" * 16000)  # 2 s
    assert c.send("discarded", {"start": "PT2S", "discarded": "PT0.5S"}) == []
    assert s.samples == 16000 and s.position_mismatches == 0
    c.samples += 12000
    assert c.send("discarded", {"start": "PT2S", "discarded": "PT1.5S"}) == [PushGap(1.5)]
    assert s.samples == 28000
