"""One bus entry: the fields of a Redis Stream entry, and duplicate dropping.

Every entry has these string fields (docs/deployment.md, "Event bus"):

``type``     event kind (final, hint, summary, signal, ...)
``call_id``  the call
``node``     the server that handled it
``run``      that server process's start token (a restarted node starts new sequences)
``seq``      1, 2, 3, ... per call and run, in the order the node emitted them
``ts``       Unix time the node emitted the event
``data``     the event as JSON, the same message as on ``/events``

Publishing is at least once: after a lost reply the publisher writes an entry
again, so the same ``(node, run, call_id, seq)`` can appear twice in the
stream. :class:`Dedup` drops the second one.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from voicetriage.core.serialize import dumps

FIELDS = ("type", "call_id", "node", "run", "seq", "ts", "data")


class BadEntry(ValueError):
    """A stream entry that is not a voicetriage event."""


@dataclass(frozen=True)
class BusEvent:
    """An event read from the bus."""

    id: str  # the stream entry id
    type: str
    call_id: str
    node: str
    run: str
    seq: int
    ts: float
    message: dict = field(hash=False)

    @property
    def kind(self) -> str:
        return self.type

    @property
    def key(self) -> tuple[str, str, str, int]:
        """What identifies the event across duplicate entries."""
        return (self.node, self.run, self.call_id, self.seq)

    @property
    def bus_message(self) -> dict:
        """The ``/events`` form: the node's message plus the node that emitted it."""
        return {**self.message, "node": self.node}


def encode_entry(message: Mapping[str, Any], *, node: str, run: str, seq: int, ts: float) -> dict[str, str]:
    return {
        "type": str(message.get("type", "")),
        "call_id": str(message.get("call_id") or ""),
        "node": node,
        "run": run,
        "seq": str(seq),
        "ts": f"{ts:.3f}",
        "data": dumps(message),
    }


def _text(v: Any) -> str:
    return v.decode("utf-8") if isinstance(v, (bytes, bytearray)) else str(v)


def parse_entry(entry_id: Any, fields: Mapping[Any, Any]) -> BusEvent:
    """A stream entry as a :class:`BusEvent` (BadEntry if it is not one)."""
    f = {_text(k): v for k, v in fields.items()}
    missing = [k for k in FIELDS if k not in f]
    if missing:
        raise BadEntry(f"entry {_text(entry_id)}: missing field(s) {', '.join(missing)}")
    try:
        message = json.loads(_text(f["data"]))
        seq = int(_text(f["seq"]))
        ts = float(_text(f["ts"]))
    except (ValueError, UnicodeDecodeError) as e:
        raise BadEntry(f"entry {_text(entry_id)}: {e}") from None
    if not isinstance(message, dict) or seq < 1:
        raise BadEntry(f"entry {_text(entry_id)}: data is not an event object or seq < 1")
    return BusEvent(
        id=_text(entry_id), type=_text(f["type"]), call_id=_text(f["call_id"]), node=_text(f["node"]),
        run=_text(f["run"]), seq=seq, ts=ts, message=message,
    )


class Dedup:
    """Drops events already seen, by ``(node, run, call_id, seq)``.

    Remembers the sequence numbers of the last ``max_calls`` calls (least
    recently seen forgotten first); order of arrival does not matter.
    """

    def __init__(self, max_calls: int = 50_000) -> None:
        self._calls: collections.OrderedDict[tuple[str, str, str], set[int]] = collections.OrderedDict()
        self.max_calls = max_calls
        self.duplicates = 0

    def seen(self, ev: BusEvent) -> bool:
        """True if ``ev`` is a duplicate; otherwise remember it and return False."""
        key = (ev.node, ev.run, ev.call_id)
        seqs = self._calls.get(key)
        if seqs is None:
            seqs = self._calls[key] = set()
            if len(self._calls) > self.max_calls:
                self._calls.popitem(last=False)
        else:
            self._calls.move_to_end(key)
        if ev.seq in seqs:
            self.duplicates += 1
            return True
        seqs.add(ev.seq)
        return False


__all__ = ["BadEntry", "BusEvent", "Dedup", "FIELDS", "encode_entry", "parse_entry"]
