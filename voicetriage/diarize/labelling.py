"""Diarization output for transcripts: speaker turns, labels for segments, RTTM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence


@dataclass(frozen=True)
class SpeakerTurn:
    """One stretch of one speaker's speech (seconds from the start of the file)."""

    start: float
    end: float
    speaker: str


def turns_of(annotation, names: Mapping[str, str] | None = None) -> list[SpeakerTurn]:
    """A ``pyannote.core.Annotation`` as time-ordered turns, labels renamed by ``names``."""
    names = names or {}
    out = [
        SpeakerTurn(float(seg.start), float(seg.end), names.get(label, label))
        for seg, _, label in annotation.itertracks(yield_label=True)
    ]
    return sorted(out, key=lambda t: (t.start, t.end, t.speaker))


def speech_per_speaker(annotation) -> list[tuple[str, float]]:
    return [(label, float(annotation.label_duration(label))) for label in annotation.labels()]


def speaker_for(start: float, end: float, turns: Sequence[SpeakerTurn]) -> str | None:
    """The speaker who talks most within [start, end]; the nearest turn's if none does."""
    if not turns:
        return None
    overlap: dict[str, float] = {}
    for t in turns:
        d = min(end, t.end) - max(start, t.start)
        if d > 0:
            overlap[t.speaker] = overlap.get(t.speaker, 0.0) + d
    if overlap:
        return max(sorted(overlap), key=lambda s: overlap[s])
    mid = (start + end) / 2
    nearest = min(turns, key=lambda t: min(abs(mid - t.start), abs(mid - t.end)))
    return nearest.speaker


def render_rttm(uri: str, turns: Iterable[SpeakerTurn]) -> str:
    from voicetriage.offline.formats import rttm_text

    return rttm_text(uri, [(t.start, t.end, t.speaker) for t in turns])


def parse_rttm(text: str):
    """RTTM text -> ``{uri: pyannote.core.Annotation}``."""
    from pyannote.core import Annotation, Segment

    out: dict[str, Annotation] = {}
    for n, line in enumerate(text.splitlines(), 1):
        f = line.split()
        if not f or f[0] != "SPEAKER":
            continue
        if len(f) < 8:
            raise ValueError(f"RTTM line {n}: expected at least 8 fields, got {len(f)}")
        uri, start, dur, label = f[1], float(f[3]), float(f[4]), f[7]
        ann = out.setdefault(uri, Annotation(uri=uri))
        ann[Segment(start, start + dur), len(ann)] = label
    return out
