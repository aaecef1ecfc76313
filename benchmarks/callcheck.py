"""Whole-call accuracy: a system's transcript of one call against the reference and against
an offline transcript of the same audio.

Per-utterance scores (:mod:`benchmarks.analysis`) depend on the server's timestamps to
attribute text to utterances; a server whose segments straddle two utterances, or whose
timestamps drift, scores badly there even when it heard every word. The whole-call
score needs no attribution: the transcript the system's own client shows at the end of
the call, scored against all the call's reference transcripts in order. A peer whose
streamed transcript is far worse than faster-whisper's offline transcript of the same
file with the same weights is a harness fault until shown otherwise, so its latency is
reported as unchecked (:func:`check`).

Units: English-only calls by words (WER); calls with Chinese by "mixed" units (MER):
Chinese characters one by one and each Latin word as one unit (scoring.units with a
Chinese language: Traditional folded to Simplified, punctuation dropped).
"""

from __future__ import annotations

from .analysis import CallTrace, committed_transcript
from .corpus import Call
from .scoring import error_counts, units
from voicetriage.evaluation.textnorm import edit_distance

# a streamed transcript may be this much worse (absolute error rate, against the
# reference) than the same system's offline transcript before its latency is flagged
MAX_GAP = 0.10


def call_language(call: Call) -> str:
    """'en' for English-only calls (WER), 'cmn' otherwise (mixed units)."""
    return "en" if all(u.language == "en" for u in call.utterances) else "cmn"


def metric(call: Call) -> str:
    return "wer" if call_language(call) == "en" else "mer"


def reference(call: Call) -> str:
    return " ".join(u.transcript.strip() for u in call.utterances)


def score(ref: str, hyp: str, language: str) -> dict:
    edits, n = error_counts(ref, hyp, language)
    return {"value": round(edits / n, 4) if n else None, "edits": edits, "units": n}


def call_record(trace: CallTrace) -> dict:
    """The call's transcript as the system's client shows it, scored against the reference."""
    hyp = trace.transcript if trace.transcript is not None else committed_transcript(trace.obs)
    lang = call_language(trace.call)
    return {"call": trace.call.id, "metric": metric(trace.call), "transcript": hyp,
            "reference": reference(trace.call), **score(reference(trace.call), hyp, lang)}


def check(streamed: dict, offline_text: str, call: Call, *, max_gap: float = MAX_GAP) -> dict:
    """Streamed (a :func:`call_record`) against the offline transcript of the same call.

    ``passed``: the streamed error against the reference is at most ``max_gap`` above
    the offline one's. ``streamed_vs_offline``: the streamed transcript scored with the
    offline one as the reference (how far streaming moved the words);
    ``streamed_vs_offline_prefix``: the same against only as much of the offline
    transcript as the streamed one is long, so words never delivered (a system that fell
    behind and stopped at the end of the call) are told apart from wrong ones.
    """
    lang = call_language(call)
    off = score(reference(call), offline_text, lang)
    vs = score(offline_text, streamed["transcript"], lang)
    hyp_u, off_u = units(streamed["transcript"], lang), units(offline_text, lang)
    prefix = off_u[:len(hyp_u)]
    pre = {"value": round(edit_distance(prefix, hyp_u) / len(prefix), 4) if prefix else None,
           "edits": edit_distance(prefix, hyp_u), "units": len(prefix), "undelivered_units": len(off_u) - len(prefix)}
    gap = None if streamed["value"] is None or off["value"] is None else round(streamed["value"] - off["value"], 4)
    return {"call": call.id, "metric": metric(call), "streamed": {k: streamed[k] for k in ("value", "edits", "units")},
            "offline": off, "streamed_vs_offline": vs, "streamed_vs_offline_prefix": pre, "gap": gap, "max_gap": max_gap,
            "passed": gap is not None and gap <= max_gap,
            "streamed_transcript": streamed["transcript"], "offline_transcript": offline_text}


__all__ = ["call_record", "check", "reference", "metric", "call_language", "score", "MAX_GAP"]
