"""Replay a call's recorded finals, with its audio, through the whole triage (every default
extractor and the default policy) and get the hints: a policy or signal change checked
against what the recogniser really said, without decoding again."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from voicetriage.core.events import SAMPLE_RATE, Final, Hint

FINAL_DELAY_S = 0.6  # the pipeline's 0.5 s of end silence and a decode
PACKET = 320  # 20 ms at 16 kHz, as telephony sends it


def final_from_record(rec: dict[str, Any], call_id: str = "c1") -> Final:
    """A Final from its serialised form (an eval report's `calls[].finals[]`)."""
    fields = set(Final.__dataclass_fields__) - {"call_id", "track"}
    kw = {k: v for k, v in rec.items() if k in fields}
    kw["language_candidates"] = tuple(tuple(x) for x in kw.get("language_candidates", ()))
    kw["dialect_scores"] = tuple(tuple(x) for x in kw.get("dialect_scores", ()))
    return Final(call_id=call_id, track=rec.get("track", "caller"), **kw)


def replay_hints(audio: np.ndarray, finals: Iterable[Final], call_id: str = "c1") -> list[Hint]:
    """Audio (16 kHz float) in 20 ms packets, each final FINAL_DELAY_S after its end: the hints."""
    from voicetriage.evaluation.runner import _observer_for

    obs = _observer_for(call_id, [], None, policy=True)
    pending = sorted(finals, key=lambda f: f.end)
    audio = np.concatenate([audio, np.zeros(2 * SAMPLE_RATE, dtype=np.float32)])
    out: list = []
    for off in range(0, len(audio), PACKET):
        t0 = off / SAMPLE_RATE
        while pending and pending[0].end + FINAL_DELAY_S <= t0:
            out += obs.on_event(pending.pop(0))
        out += obs.on_audio("caller", audio[off : off + PACKET], t0)
    return [h for h in out if isinstance(h, Hint)]


__all__ = ["final_from_record", "replay_hints"]
