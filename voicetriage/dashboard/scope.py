"""What a token's scopes let it see of the dashboard's state (as ``/events`` does).

* ``all`` or ``events``: everything;
* ``no_transcripts``: no transcript lines, and hint evidence without the caller's words;
* ``hints`` (alone): the calls and their hints only: no transcript, no signal
  estimates, no timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voicetriage.sinks.events_ws import scrub_transcripts

_SIGNAL_FIELDS = ("languages", "dialect", "rate", "age", "distress")


@dataclass(frozen=True)
class View:
    transcripts: bool = True  # transcript lines
    signals: bool = True  # signal estimates on rows, the timeline
    plain_hints: bool = True  # hint evidence as is (else without transcript fields)

    @classmethod
    def of(cls, scopes: frozenset[str]) -> "View":
        full = "all" in scopes or "events" in scopes
        hints_only = not full and "hints" in scopes
        blind = not full and "no_transcripts" in scopes
        return cls(transcripts=not (hints_only or blind), signals=not hints_only, plain_hints=not blind)

    def describe(self) -> dict[str, bool]:
        return {"transcripts": self.transcripts, "signals": self.signals}


def row(view: View, r: dict[str, Any]) -> dict[str, Any]:
    if view.signals:
        return r
    return {**r, **{k: None for k in _SIGNAL_FIELDS}}


def hint(view: View, h: dict[str, Any]) -> dict[str, Any]:
    return h if view.plain_hints else scrub_transcripts(h)


def snapshot(view: View, snap: dict[str, Any]) -> dict[str, Any]:
    return {**snap, "calls": [row(view, r) for r in snap["calls"]],
            "ended": [row(view, r) for r in snap["ended"]], "view": view.describe()}


def detail(view: View, d: dict[str, Any]) -> dict[str, Any]:
    return {
        **d,
        "call": row(view, d["call"]),
        "lines": d["lines"] if view.transcripts else [],
        "partials": d["partials"] if view.transcripts else [],
        "hints_list": [hint(view, h) for h in d["hints_list"]],
        "timeline": d["timeline"] if view.signals else {},
        "view": view.describe(),
    }


def delta(view: View, d: dict[str, Any]) -> dict[str, Any] | None:
    """A delta as ``view`` may see it (None: not at all)."""
    kind = d["type"]
    if kind in ("call", "ended"):
        return {**d, "call": row(view, d["call"])}
    if kind == "line":
        return d if view.transcripts else None
    if kind == "point":
        return d if view.signals else None
    if kind == "hint":
        return {**d, "hint": hint(view, d["hint"])}
    return d


__all__ = ["View", "row", "hint", "snapshot", "detail", "delta"]
