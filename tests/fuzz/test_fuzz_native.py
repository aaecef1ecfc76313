"""The native protocol under hostile input: errors are answered, never raised; audio is what came."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from fuzzwire import FUZZ, captured_logs, check_actions, feed, wire_text
from voicetriage.protocols.actions import EndCall, Send, StartCall
from voicetriage.protocols.native import NativeConnection

START = {"type": "start", "call_id": "c-1", "caller_id": "+15551234", "language": "en",
         "encoding": "pcm16", "sample_rate": 16000, "channels": 2, "tracks": ["caller", "agent"],
         "metadata": {"queue": "billing", "n": 3}}
LATER = [{"type": "dtmf", "digit": "5", "track": "caller"}, {"type": "health"}, {"type": "ping"},
         {"type": "stop"}, START]
step = st.one_of(*(wire_text(m, 2) for m in LATER), st.binary(max_size=4000))


def run(steps: list) -> None:
    c = NativeConnection(model="tiny", max_message_bytes=1 << 20)
    with captured_logs() as logs:
        for item in steps:
            recv = c.receive_bytes if isinstance(item, bytes) else c.receive_text
            actions = feed(lambda: recv(item), logs)
            check_actions(actions, input_bytes=len(item), max_gap_s=0.0)
            for a in actions:
                if isinstance(a, StartCall):
                    assert a.info.call_id.isprintable() and len(a.info.call_id) <= 128
                    actions += c.call_started()
                if isinstance(a, Send):
                    msg = json.loads(a.message)
                    assert isinstance(msg, dict) and isinstance(msg.get("type"), str)
                if isinstance(a, EndCall):
                    c.ended = a
                    assert c.close_frame() is not None
        feed(c.connection_lost, logs)


@FUZZ
@given(wire_text(START), st.lists(step, max_size=6))
def test_any_connection(start, steps):
    run([start, *steps])


@FUZZ
@given(st.lists(step, max_size=6))
def test_after_a_good_start(steps):
    run([json.dumps(START), *steps])
