"""Hypothesis strategies for hostile wire input, and the properties every parser must keep.

Messages start from the real shapes each protocol documents and get mutated: a field
replaced by a hostile value (an integer over Python's 4,300-digit limit, a list where
a string belongs, a nested object, NaN, a huge string, control characters, an absurd
duration), a field deleted, an unknown one added. JSON is written by :func:`to_json`,
which can emit what ``json.dumps`` cannot (integers of any length, ``NaN``) because a
peer can send it.

Settings: :data:`FUZZ` is derandomized and keeps no example database, so a run is the
same everywhere; ``VOICETRIAGE_FUZZ_EXAMPLES`` raises the example count for a longer run.
"""

from __future__ import annotations

import logging
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st

from voicetriage.core.errors import VoiceTriageError
from voicetriage.core.events import DTMF_DIGITS
from voicetriage.protocols.actions import EndCall, PushAudio, PushDigit, PushGap, Send

FUZZ = settings(
    max_examples=int(os.environ.get("VOICETRIAGE_FUZZ_EXAMPLES", "200")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

LOG_LINE_CAP = 2000  # the longest log message a wire value may produce (logsafe caps each value at 200)


@dataclass(frozen=True)
class Raw:
    """JSON text emitted as is (what json.dumps refuses to write)."""

    text: str


def to_json(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, str):
        import json

        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{to_json(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    raise TypeError(type(value))


def _digits(n: int, sign: str = "") -> Raw:
    return Raw(sign + "9" * n)


# -- hostile values -------------------------------------------------------------
huge_ints = st.one_of(
    st.integers(4301, 6000).map(_digits),
    st.integers(4301, 5000).map(lambda n: _digits(n, "-")),
    st.integers(4301, 5000).map(lambda n: Raw("1" + "0" * n + ".5")),  # a float literal past every limit
    st.sampled_from([Raw("1e99999"), Raw("-1e99999"), Raw("NaN"), Raw("Infinity"), Raw("-Infinity")]),
)
control_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x9F), max_size=40)
huge_strings = st.integers(0, 1 << 20).map(lambda n: "A" * n) | st.integers(1, 70000).map(lambda n: "\n" * n)
durations = st.one_of(
    st.sampled_from(["PT1800S", "PT86400S", "PT0S", "PT-1S", "PT1e5S", "PT.5S", "PT0.0000000001S", "PTS",
                     "PT1800", "P1DT0S", "PT 1S", "PT1.S", "PT99999999999999999999999999999999S"]),
    st.integers(0, 10**12).map(lambda n: f"PT{n}S"),
    st.integers(30, 60000).map(lambda n: "PT" + "9" * n + "S"),
    st.integers(1, 400).map(lambda n: "PT0." + "0" * n + "1S"),
    st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False).map(lambda d: f"PT{d}S"),
)
deep = st.integers(1, 3000).map(lambda n: Raw("[" * n + "]" * n)) | st.integers(1, 3000).map(
    lambda n: Raw('{"a":' * n + "1" + "}" * n))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), control_text,
)
nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                           max_size=4), max_leaves=12)
hostile = st.one_of(
    huge_ints, huge_strings, control_text, durations, deep, nested,
    st.just([{}]), st.just([[]]), st.just({}), st.just([]), st.lists(st.text(max_size=10), max_size=4),
    st.just(float("nan")), st.integers(-(10**18), 10**18),
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, prefix + (i,))
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


@st.composite
def mutated(draw: st.DrawFn, base: Any, max_mutations: int = 3) -> Any:
    """``base`` (a real message) with 0..``max_mutations`` fields replaced, deleted or added."""
    msg = _copy(base)
    for _ in range(draw(st.integers(0, max_mutations))):
        paths = _paths(msg)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        if not path:
            if op == "replace":
                msg = _copy(draw(hostile))
            continue
        parent = msg
        for key in path[:-1]:
            parent = parent[key]
        last = path[-1]
        if op == "replace":
            parent[last] = _copy(draw(hostile))
        elif op == "delete":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = _copy(draw(hostile))
        else:
            parent.append(_copy(draw(hostile)))
    return msg


def wire_text(base: Any, max_mutations: int = 3) -> st.SearchStrategy[str]:
    """JSON text of a mutated ``base``, now and then cut short or with bytes spliced in."""

    def damage(args: tuple[str, int, str]) -> str:
        text, cut, junk = args
        return text[:cut] + junk if cut < len(text) else text

    valid = mutated(base, max_mutations).map(to_json)
    broken = st.tuples(valid, st.integers(0, 400), st.text(max_size=8)).map(damage)
    return st.one_of(valid, valid, valid, broken)


# -- the properties -------------------------------------------------------------
class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def captured_logs() -> Iterator[Captured]:
    """Every record of the ``voicetriage`` loggers, at every level."""
    logger = logging.getLogger("voicetriage")
    handler = Captured()
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def check_logs(handler: Captured) -> None:
    """Log lines stay one line each and short, whatever came from the wire."""
    for r in handler.records:
        message = r.getMessage()
        assert len(message) <= LOG_LINE_CAP, f"{len(message)}-char log line: {message[:200]!r}"
        assert "\n" not in message and "\r" not in message, f"forged log line: {message[:200]!r}"


def feed(call: Callable[[], list], handler: Captured | None = None) -> list:
    """Run one input through a machine: only the project's own errors may escape."""
    try:
        actions = call()
    except VoiceTriageError:
        return []
    assert isinstance(actions, list)
    for a in actions:  # what the run reached (pytest --hypothesis-show-statistics)
        event(type(a).__name__ if not isinstance(a, EndCall) else f"EndCall {a.code or a.reason}")
    if handler is not None:
        check_logs(handler)
    return actions


def check_actions(actions: list, *, input_bytes: int, max_gap_s: float) -> None:
    """Audio is never more than the input carried; a gap is at most ``max_gap_s``;
    an ending's error and code are strings."""
    audio = sum(len(a.data) for a in actions if isinstance(a, PushAudio))
    assert audio <= input_bytes, f"{audio} bytes of audio from {input_bytes} bytes of input"
    for a in actions:
        if isinstance(a, PushGap):
            assert 0 < a.seconds <= max_gap_s and math.isfinite(a.seconds), a
        elif isinstance(a, PushDigit):
            assert a.digit in DTMF_DIGITS and (a.time is None or 0 <= a.time < 1e10), a
        elif isinstance(a, EndCall):
            assert a.error is None or isinstance(a.error, str)
            assert a.code is None or isinstance(a.code, str)
        elif isinstance(a, Send):
            assert isinstance(a.message, (str, bytes))


__all__ = ["FUZZ", "Raw", "to_json", "hostile", "durations", "mutated", "wire_text", "captured_logs", "check_logs",
           "feed", "check_actions", "huge_ints", "huge_strings", "control_text"]
