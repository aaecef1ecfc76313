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
# above this the offline transcript itself is unusable (the weights fail on the call, or a
# decoding loop): no streamed transcript can be checked against it
MAX_OFFLINE = 0.5


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


def check(streamed: dict, offline_text: str, call: Call | None, *, max_gap: float = MAX_GAP,
          language: str | None = None, ref: str | None = None) -> dict:
    """Streamed (a :func:`call_record`) against the offline transcript of the same call.

    ``passed``: the offline transcript is usable (error at most ``MAX_OFFLINE``) and the
    streamed error against the reference is at most ``max_gap`` above the offline one's. ``streamed_vs_offline``: the streamed transcript scored with the
    offline one as the reference (how far streaming moved the words);
    ``streamed_vs_offline_prefix``: the same against only as much of the offline
    transcript as the streamed one is long, so words never delivered (a system that fell
    behind and stopped at the end of the call) are told apart from wrong ones.
    """
    lang = language or call_language(call)
    ref = ref if ref is not None else reference(call)
    off = score(ref, offline_text, lang)
    vs = score(offline_text, streamed["transcript"], lang)
    hyp_u, off_u = units(streamed["transcript"], lang), units(offline_text, lang)
    prefix = off_u[:len(hyp_u)]
    pre = {"value": round(edit_distance(prefix, hyp_u) / len(prefix), 4) if prefix else None,
           "edits": edit_distance(prefix, hyp_u), "units": len(prefix), "undelivered_units": len(off_u) - len(prefix)}
    gap = None if streamed["value"] is None or off["value"] is None else round(streamed["value"] - off["value"], 4)
    usable = off["value"] is not None and off["value"] <= MAX_OFFLINE
    return {"call": call.id if call else streamed.get("call"), "metric": "wer" if lang == "en" else "mer",
            "streamed": {k: streamed[k] for k in ("value", "edits", "units")},
            "offline": off, "streamed_vs_offline": vs, "streamed_vs_offline_prefix": pre, "gap": gap, "max_gap": max_gap,
            "passed": usable and gap is not None and gap <= max_gap, "offline_usable": usable,
            "streamed_transcript": streamed["transcript"], "offline_transcript": offline_text}


def verdict(r: dict) -> str:
    """'checked', 'NOT comparable' or 'no check: own offline unusable' for one accuracy check."""
    if r.get("offline_usable") is False:
        return "no check: own offline unusable"
    return "checked" if r["passed"] else "NOT comparable"


def recheck(path: str) -> list[dict]:
    """The accuracy checks of a results JSON, recomputed from its stored transcripts (runs
    written before a field of the check existed get it too)."""
    import json

    out = []
    for s in json.load(open(path, encoding="utf-8"))["systems"]:
        c, lv = s.get("accuracy_check"), next((x for x in s.get("levels", []) if x["calls"] == 1), None)
        if not c or c.get("error") or not lv or not lv.get("calls_text"):
            continue
        rec = lv["calls_text"][0]
        res = check(rec, c["offline_transcript"], None, language="en" if rec["metric"] == "wer" else "cmn",
                    ref=rec["reference"])
        out.append({"label": s["label"], "load": (lv.get("load_average") or [None])[0],
                    "cpu_cores": lv["usage"]["cpu_cores"], **res})
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.callcheck RESULTS.json ...``: the peers' accuracy checks as a table."""
    import sys

    paths = sys.argv[1:] if argv is None else argv
    print("| run | peer | load | server CPU cores | streamed vs ref | own offline vs ref | streamed vs own "
          "offline | delivered vs as much of own offline (units never delivered) | check |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for p in paths:
        for r in recheck(p):
            m, pre = r["metric"].upper(), r["streamed_vs_offline_prefix"]
            v = "–" if pre["value"] is None else f"{pre['value']:.3f}"
            print(f"| {p.rsplit('/', 1)[-1]} | {r['label']} | {r['load']} | {r['cpu_cores']} | "
                  f"{m} {r['streamed']['value']:.3f} | {m} {r['offline']['value']:.3f} | "
                  f"{m} {r['streamed_vs_offline']['value']:.3f} | {m} {v} over {pre['units']} ({pre['undelivered_units']}) | "
                  f"{verdict(r)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["MAX_OFFLINE", "recheck", "main", "call_record", "check", "reference", "metric", "call_language", "score", "MAX_GAP"]
