"""Whether the recogniser believes its own transcript: the gate in front of request and distress words.

A request for a person or an emergency word moves a call ahead of others, so it
must come from text the recogniser stands behind, not from a guess on speech it
could not follow (synthetic or dialect speech, noise) or from a repetition loop.
The thresholds are Whisper's own: its decoder falls back to a higher temperature
below an average log-probability of -1.0 or above a gzip compression ratio of
2.4 (faster-whisper ``TranscriptionOptions``).
"""

from __future__ import annotations

import zlib

from voicetriage.core.events import Final, Partial

# what the recogniser must believe (Whisper's own fallback thresholds: log-prob -1.0,
# compression ratio 2.4) before a request or an emergency word counts
MIN_LANGUAGE_PROB = 0.5
MIN_AVG_LOGPROB = -1.0
MAX_COMPRESSION_RATIO = 2.4
# a partial's unstable tail counts only from a confident decode
CONFIDENT_AVG_LOGPROB = -0.5
CONFIDENT_LANGUAGE_PROB = 0.8
# ... or from a settled one: asked for on a pause after the speech (the utterance may
# be over, so the decode saw all of it, as the final will) and scored between
# Whisper's fallback threshold and the confident one (docs/signals.md, measured)
SETTLED_AVG_LOGPROB = -0.8


def _text_compression(text: str) -> float:
    raw = text.strip().encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if len(raw) >= 24 else 0.0


def belief(ev: Partial | Final, text: str | None = None) -> tuple[bool, bool, list[str]]:
    """(believed, confident, reasons for doubt) for an event's transcript.

    ``believed``: the language probability, the average log-probability and the
    absence of a repetition loop say the text is what was said. ``confident``:
    believed, with a log-probability of -0.5 or better and a language probability
    of 0.8 or more. An event without a log-probability (an older producer) is
    believed on its language probability but never confident.
    """
    doubts = []
    p = float(ev.language_probability)
    lp = ev.avg_logprob
    if p < MIN_LANGUAGE_PROB:
        doubts.append(f"language {ev.language or '?'} p={p:.2f}")
    if lp is not None and lp < MIN_AVG_LOGPROB:
        doubts.append(f"avg log-prob {lp:.2f}")
    cr = max(float(ev.compression_ratio or 0.0), _text_compression(ev.text if text is None else text))
    if cr > MAX_COMPRESSION_RATIO:
        doubts.append(f"repetition (compression ratio {cr:.1f})")
    believed = not doubts
    confident = believed and lp is not None and lp >= CONFIDENT_AVG_LOGPROB and p >= CONFIDENT_LANGUAGE_PROB
    return believed, confident, doubts


def settled(ev: Partial | Final) -> bool:
    """A partial asked for on a pause after its speech (``pause_s`` > 0), decoded with
    a log-probability of -0.8 or better and a language probability of 0.8 or more.

    Its whole text, tail included, is then about what the final will say: the same
    audio, ended by the same pause. Only for a believed event (see :func:`belief`)."""
    lp = ev.avg_logprob
    return (isinstance(ev, Partial) and ev.pause_s > 0 and lp is not None and lp >= SETTLED_AVG_LOGPROB
            and float(ev.language_probability) >= CONFIDENT_LANGUAGE_PROB)


__all__ = ["belief", "settled", "SETTLED_AVG_LOGPROB", "MIN_LANGUAGE_PROB", "MIN_AVG_LOGPROB", "MAX_COMPRESSION_RATIO",
           "CONFIDENT_AVG_LOGPROB", "CONFIDENT_LANGUAGE_PROB"]
