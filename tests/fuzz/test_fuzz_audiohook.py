"""AudioHook under hostile input: every message shape mutated, with the session's own seq
numbering kept where the mutation left it, so the fuzzing reaches past the envelope checks."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzwire import FUZZ, captured_logs, check_actions, feed, mutated, to_json
from voicetriage.protocols.actions import EndCall, PushAudio, PushGap, Send, StartCall
from voicetriage.protocols.audiohook import MAX_TEXT_CHARS, AudioHookSession
from voicetriage.protocols.audiohook_wire import MAX_DURATION_S
from voicetriage.protocols.machine import close_code_for

SESSION = "30b0e395-84d3-4570-ac13-9a62d8f514c0"
ORG = "d7934305-0972-4844-938e-9060eef73d05"
SEQ, SERVERSEQ = "$seq", "$serverseq"  # filled in when the message is sent, unless mutated away


def envelope(type_: str, parameters: dict, position: str = "PT1S") -> dict:
    return {"version": "2", "id": SESSION, "type": type_, "seq": SEQ, "serverseq": SERVERSEQ,
            "position": position, "parameters": parameters}


OPEN = envelope("open", {
    "organizationId": ORG, "conversationId": "090eaa2f-72fa-480a-83e0-8667ff89c0ec",
    "participant": {"id": "883efee8-3d6c-4537-b500-6d7ca4b92fa0", "ani": "+15555551234", "aniName": "",
                    "dnis": "+15555554321"},
    "media": [{"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000},
              {"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}],
    "language": "en-US", "supportedLanguages": True,
    "customConfig": {"languages": {"internal": "zh-CN", "external": None}},
}, "PT0S")
LATER = [
    envelope("ping", {"rtt": "PT0.05S"}),
    envelope("update", {"language": "zh-CN"}),
    envelope("paused", {}),
    envelope("resumed", {"start": "PT1S", "discarded": "PT1800S"}, "PT1801S"),
    envelope("discarded", {"start": "PT1S", "discarded": "PT2.5S"}, "PT3.5S"),
    envelope("discarded", {"start": "PT1S", "discarded": "PT1800S"}, "PT1801S"),
    envelope("dtmf", {"digit": "5"}),
    envelope("error", {"code": 500, "message": "oops", "retryAfter": "PT2S"}),
    envelope("close", {"reason": "end"}),
]

message = st.one_of(mutated(OPEN), *(mutated(m, 2) for m in LATER))
audio = st.binary(max_size=1600)
step = st.one_of(message, message, audio)


def send(s: AudioHookSession, item) -> tuple[list, int]:
    if isinstance(item, bytes):
        return s.receive_bytes(item), len(item)

    def fill(v):
        if v == SEQ:
            return s.clientseq + 1
        if v == SERVERSEQ:
            return s.seq
        if isinstance(v, dict):
            return {k: fill(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fill(x) for x in v]
        return v

    text = to_json(fill(item))
    return s.receive_text(text), len(text)


def run(steps: list) -> None:
    s = AudioHookSession(SESSION, organization_id=ORG)
    with captured_logs() as logs:
        for item in steps:
            holder: list = []
            actions = feed(lambda: holder.extend(send(s, item)) or holder[0], logs)
            size = holder[1] if len(holder) > 1 else 0
            check_actions(actions, input_bytes=size, max_gap_s=float(MAX_DURATION_S))
            for a in actions:
                if isinstance(a, StartCall):
                    actions += s.call_started()
                if isinstance(a, Send):
                    assert len(a.message) <= MAX_TEXT_CHARS
                if isinstance(a, EndCall):
                    close_code_for(a.code)
                    actions += s.finish()
        feed(s.connection_lost, logs)
    assert s.samples >= 0 and s.seq >= 0


@FUZZ
@given(mutated(OPEN), st.lists(step, max_size=8))
def test_any_session(open_, steps):
    run([open_, *steps])


@FUZZ
@given(st.lists(step, max_size=8))
def test_after_a_good_open(steps):
    run([OPEN, b"\xff" * 320, *steps])


@FUZZ
@given(st.sampled_from(["start", "discarded"]), st.one_of(st.integers(0, 10**7), st.integers(10**7, 10**13)))
def test_a_discard_is_one_gap_of_its_length(field, samples):
    """However long a discard, it is one gap of its length (the session counts a long
    one rather than materialising it: tests/test_gaps.py), never audio."""
    s = AudioHookSession(SESSION, organization_id=ORG)
    send(s, OPEN)
    s.call_started()
    seconds = Decimal(samples) / 8000
    params = {"start": "PT0S", "discarded": f"PT{seconds}S"}
    actions, _ = send(s, envelope("discarded", params, f"PT{seconds}S"))
    gaps = [a.seconds for a in actions if isinstance(a, PushGap)]
    assert not any(isinstance(a, PushAudio) for a in actions)
    if 0 < seconds <= MAX_DURATION_S:
        assert gaps == [pytest.approx(float(seconds))]
    else:  # nothing, or refused as a malformed duration
        assert gaps == []
