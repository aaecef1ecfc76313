"""Coverage-guided fuzzing of every protocol parser and the codecs with atheris (not a pytest module).

One entry point: the first byte chooses the target, the rest is split into messages at
0x1e (a message starting with 0x1f is a binary frame):

    0 native   1 Twilio   2 AudioHook   3 AudioSocket (raw bytes)   4 codecs   5 RFC 8941 / AudioHook auth

Native, Twilio and AudioHook first get a valid opening (start / connected+start / open),
then the fuzzed messages; AudioHook messages that parse as objects get the session's own
seq/serverseq when the second byte is even, so the fuzzer gets past the envelope checks.
A crash is any exception other than the project's own (VoiceTriageError; SfError from
the structured-field parser), audio out of more bytes than came in, a gap over its limit,
or a log line over 2,000 characters or with a line break. docs/fuzzing.md has the commands:

    python tests/fuzz/atheris_protocols.py --make-corpus /tmp/vt-corpus
    timeout 600 nice -n 10 python tests/fuzz/atheris_protocols.py -max_total_time=480 \
        -rss_limit_mb=2048 /tmp/vt-corpus
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys

RS, BIN = b"\x1e", b"\x1f"
LOG_LINE_CAP = 2000
SESSION = "30b0e395-84d3-4570-ac13-9a62d8f514c0"
ORG = "d7934305-0972-4844-938e-9060eef73d05"
SID = "MZ18ad3ab5a668481ce02b83e7395059f0"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


RECORDS = _Records()


def _setup_logging() -> None:
    logger = logging.getLogger("voicetriage")
    logger.addHandler(RECORDS)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False


def _check_logs() -> None:
    for r in RECORDS.records:
        m = r.getMessage()
        if len(m) > LOG_LINE_CAP or "\n" in m or "\r" in m:
            raise AssertionError(f"log line of {len(m)} chars: {m[:300]!r}")
    RECORDS.records.clear()


def _messages(data: bytes) -> list[str | bytes]:
    out: list[str | bytes] = []
    for part in data.split(RS):
        out.append(part[1:] if part.startswith(BIN) else part.decode("utf-8", "replace"))
    return out


def _check(actions: list, input_bytes: int, max_gap_s: float) -> None:
    from voicetriage.protocols.actions import EndCall, PushAudio, PushGap
    from voicetriage.protocols.machine import close_code_for

    if not isinstance(actions, list):
        raise AssertionError(f"actions {actions!r}")
    audio = sum(len(a.data) for a in actions if isinstance(a, PushAudio))
    if audio > input_bytes:
        raise AssertionError(f"{audio} bytes of audio from {input_bytes} bytes")
    for a in actions:
        if isinstance(a, PushGap) and not (0 < a.seconds <= max_gap_s and math.isfinite(a.seconds)):
            raise AssertionError(f"gap {a}")
        if isinstance(a, EndCall):
            close_code_for(a.code)


def _run(machine, items: list[str | bytes], max_gap_s: float, fix=None) -> None:
    from voicetriage.core.errors import VoiceTriageError
    from voicetriage.protocols.actions import StartCall

    for item in items:
        if fix is not None and isinstance(item, str):
            item = fix(item)
        recv = machine.receive_bytes if isinstance(item, bytes) else machine.receive_text
        try:
            actions = recv(item)
        except VoiceTriageError:
            continue
        _check(actions, len(item.encode("utf-8", "replace") if isinstance(item, str) else item), max_gap_s)
        if any(isinstance(a, StartCall) for a in actions):
            machine.call_started()
        _check_logs()
    try:
        machine.connection_lost()
    except VoiceTriageError:
        pass
    _check_logs()


def fuzz_native(data: bytes) -> None:
    from voicetriage.protocols.native import NativeConnection

    c = NativeConnection(model="m", max_message_bytes=1 << 20)
    _run(c, [json.dumps({"type": "start", "channels": 2}), *_messages(data)], 0.0)


def fuzz_twilio(data: bytes) -> None:
    from voicetriage.protocols.twilio import TwilioStream

    start = {"event": "start", "streamSid": SID, "start": {
        "streamSid": SID, "callSid": "CA1", "tracks": ["inbound", "outbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}
    s = TwilioStream()
    _run(s, ['{"event": "connected"}', json.dumps(start), *_messages(data)], s.max_gap_s)


def fuzz_audiohook(data: bytes) -> None:
    from voicetriage.protocols.audiohook import AudioHookSession
    from voicetriage.protocols.audiohook_wire import MAX_DURATION_S

    s = AudioHookSession(SESSION, organization_id=ORG)
    renumber = bool(data) and data[0] % 2 == 0

    def fix(text: str) -> str:
        if not renumber:
            return text
        try:
            msg = json.loads(text)
        except (ValueError, RecursionError):
            return text
        if not isinstance(msg, dict):
            return text
        msg.setdefault("version", "2")
        msg.setdefault("id", SESSION)
        msg.setdefault("position", "PT0S")
        msg.setdefault("parameters", {})
        msg["seq"], msg["serverseq"] = s.clientseq + 1, s.seq
        try:
            return json.dumps(msg)
        except (ValueError, RecursionError):
            return text

    opening = {"version": "2", "id": SESSION, "type": "open", "seq": 1, "serverseq": 0, "position": "PT0S",
               "parameters": {"organizationId": ORG, "conversationId": "090eaa2f-72fa-480a-83e0-8667ff89c0ec",
                              "participant": {"id": "883efee8-3d6c-4537-b500-6d7ca4b92fa0", "ani": "1",
                                              "aniName": "", "dnis": "2"},
                              "media": [{"type": "audio", "format": "PCMU", "channels": ["external", "internal"],
                                         "rate": 8000}]}}
    _run(s, [json.dumps(opening), *_messages(data[1:])], float(MAX_DURATION_S), fix)


def fuzz_audiosocket(data: bytes) -> None:
    from voicetriage.protocols.audiosocket import AudioSocketCall

    c = AudioSocketCall(peer="127.0.0.1:1")
    cut = data[0] if data else 0
    for piece in (data[1:1 + cut], data[1 + cut:]):
        _check(c.receive(piece), len(piece) + 3 * 16000, 0.0)
        _check_logs()
    c.connection_lost()
    _check_logs()


def fuzz_codecs(data: bytes) -> None:
    import struct

    from voicetriage.audio.codecs import SAMPLE_RATES, AudioSpec, StreamDecoder
    from voicetriage.core.errors import AudioFormatError

    if len(data) < 9:
        return
    spec = AudioSpec(("pcm16", "mulaw", "alaw")[data[0] % 3], SAMPLE_RATES[data[0] // 3 % 4], 1 + data[0] // 12 % 2)
    seconds = struct.unpack("<d", data[1:9])[0]
    d = StreamDecoder(spec)
    try:
        d.decode(data[9:])
    except AudioFormatError:
        pass
    if 0 <= seconds <= 5:
        d.silence(seconds)
    elif not 5 < seconds <= 3600:  # (an hour of zeros per input is allowed, but too slow to fuzz)
        try:
            d.silence(seconds)
        except AudioFormatError:
            pass
        else:
            raise AssertionError(f"silence({seconds!r}) accepted")
    d.flush()
    try:
        fields = json.loads(data[9:].decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return
    if isinstance(fields, list) and len(fields) >= 3:
        try:
            AudioSpec.parse(*fields[:3])
        except AudioFormatError:
            pass


def fuzz_auth(data: bytes) -> None:
    from voicetriage.protocols.audiohook_auth import AudioHookAuth
    from voicetriage.protocols.structured_fields import SfError, parse_dictionary

    text = data.decode("utf-8", "replace")
    try:
        parse_dictionary(text)
    except SfError:
        pass
    headers = {"Host": "example.com", "Audiohook-Session-Id": SESSION, "Audiohook-Organization-Id": ORG,
               "X-API-KEY": "key"}
    for line in text.split("\n")[:8]:
        name, _, value = line.partition(":")
        if name.strip():
            headers[name.strip()] = value.strip()
    auth = AudioHookAuth({"key": "c2VjcmV0"}, clock=lambda: 1000.0)
    result = auth.check("GET", "/audiohook", headers)
    if len(result.reason) > 400 or not result.reason.isprintable():
        raise AssertionError(f"reason {result.reason[:200]!r}")


TARGETS = (fuzz_native, fuzz_twilio, fuzz_audiohook, fuzz_audiosocket, fuzz_codecs, fuzz_auth)


def one_input(data: bytes) -> None:
    if not data:
        return
    RECORDS.records.clear()
    TARGETS[data[0] % len(TARGETS)](data[1:])


def make_corpus(folder: str) -> None:
    """Seed inputs: each target's real messages, so mutation starts from valid shapes."""
    import struct

    os.makedirs(folder, exist_ok=True)
    twilio_media = json.dumps({"event": "media", "sequenceNumber": "3", "media": {
        "track": "inbound", "chunk": "1", "timestamp": "1020", "payload": "//////////8="}})

    def ah(type_: str, params: dict, position: str = "PT1S") -> bytes:
        return json.dumps({"version": "2", "id": SESSION, "type": type_, "seq": 0, "serverseq": 0,
                           "position": position, "parameters": params}).encode()

    seeds = {
        "native": bytes([0]) + RS.join([BIN + b"\x00\x01" * 160, b'{"type":"dtmf","digit":"5"}',
                                        b'{"type":"health"}', b'{"type":"stop"}']),
        "twilio": bytes([1]) + RS.join([twilio_media.encode(),
                                        b'{"event":"dtmf","dtmf":{"track":"inbound_track","digit":"1"}}',
                                        b'{"event":"mark","mark":{"name":"x"}}', b'{"event":"stop"}']),
        "audiohook": bytes([2, 0]) + RS.join([BIN + b"\xff" * 320, ah("ping", {"rtt": "PT0.1S"}),
                                              ah("discarded", {"start": "PT1S", "discarded": "PT1800S"}, "PT1801S"),
                                              ah("update", {"language": "en-US"}), ah("dtmf", {"digit": "3"}),
                                              ah("close", {"reason": "end"})]),
        "audiosocket": bytes([3, 19]) + b"\x01\x00\x10" + bytes(range(16)) + b"\x10\x01\x40" + b"\x00" * 320
        + b"\x03\x00\x01#" + b"\x00\x00\x00",
        "codecs": bytes([4, 1]) + struct.pack("<d", 0.5) + b"\x00\x01" * 80,
        "auth": bytes([5]) + b'Signature-Input: sig1=("@request-target" "@authority");keyid="key";'
        b'nonce="AAAAAAAAAAAAAAAAAAAAAAAA";alg="hmac-sha256";created=1000;expires=1010\n'
        b"Signature: sig1=:AAAA:",
    }
    for name, data in seeds.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    print(f"{len(seeds)} seeds in {folder}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--make-corpus":
        make_corpus(sys.argv[2])
        return
    import atheris

    _setup_logging()
    with atheris.instrument_imports(include=["voicetriage"]):
        import voicetriage.audio.codecs  # noqa: F401
        import voicetriage.protocols.audiohook  # noqa: F401
        import voicetriage.protocols.audiohook_auth  # noqa: F401
        import voicetriage.protocols.audiohook_wire  # noqa: F401
        import voicetriage.protocols.audiosocket  # noqa: F401
        import voicetriage.protocols.native  # noqa: F401
        import voicetriage.protocols.structured_fields  # noqa: F401
        import voicetriage.protocols.twilio  # noqa: F401
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
