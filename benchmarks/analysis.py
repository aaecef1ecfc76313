"""From what a client saw to per-utterance latencies and error rates.

Every client (ours and each peer's) turns its server's messages into
:class:`Obs` records: when a piece of text arrived (monotonic clock), which
stretch of call audio it covers (the server's own timestamps), and whether the
server calls it final ("committed"). The rules below are the same for every
system, so what differs is only what each server says and when:

* an observation belongs to the utterance whose attribution window holds its
  start time (windows split the silences between utterances in half); one
  without a start time belongs to the last utterance that had begun when it
  arrived;
* first partial = first text of the utterance, partial or final, minus the
  moment the onset's audio frame was sent;
* final = first committed text of the utterance that reaches its end of speech
  (``end >= speech end - END_TOLERANCE_S``) minus the moment the frame holding
  the last speech sample was sent; if the server's timestamps never reach that
  far, the arrival of its last committed text for the utterance is used;
  an utterance with no committed text when the call closed is "missing"
  (counted apart, not in the percentiles);
* hint = first routing hint about a human request after the phrase's onset,
  minus the moment its last speech frame was sent (negative: before it ended).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from voicetriage.asr.safeguards import compression_ratio

from .corpus import SAMPLE_RATE, Call, Utterance
from .scoring import error_counts, metric_name

END_TOLERANCE_S = 0.6
LOOP_COMPRESSION = 2.4  # Whisper's threshold for a repetitive, failed decode


@dataclass
class Obs:
    t: float  # time.monotonic() when received
    kind: str  # "partial" | "final" | "hint"
    start: float | None  # call-audio seconds, the server's own timestamps
    end: float | None
    text: str = ""
    committed: bool = False
    key: str | None = None  # a later committed Obs with the same key replaces the text
    data: dict = field(default_factory=dict)


@dataclass
class CallTrace:
    call: Call
    chunk_samples: int
    send_times: list[float] = field(default_factory=list)  # monotonic time each chunk was sent
    obs: list[Obs] = field(default_factory=list)
    error: str | None = None
    connected_at: float = 0.0
    audio_done_at: float = 0.0
    closed_at: float = 0.0
    server_info: dict = field(default_factory=dict)
    # the whole-call transcript as the system's own client shows it at the end (None:
    # the committed observations in order, see committed_transcript)
    transcript: str | None = None

    def wall_of_sample(self, index: int) -> float:
        """When the chunk that carries sample ``index`` was sent."""
        if not self.send_times:
            return math.nan
        i = min(max(index, 0) // self.chunk_samples, len(self.send_times) - 1)
        return self.send_times[i]

    def onset_wall(self, u: Utterance) -> float:
        return self.wall_of_sample(int(u.start * SAMPLE_RATE))

    def end_wall(self, u: Utterance) -> float:
        return self.wall_of_sample(max(0, int(math.ceil(u.end * SAMPLE_RATE)) - 1))


@dataclass
class UtteranceResult:
    call_id: str
    clip_id: str
    language: str
    duration_s: float
    first_partial_s: float | None
    final_s: float | None  # None: missing
    final_by_timestamp: bool
    hint_s: float | None
    human_request: bool
    reference: str
    hypothesis: str
    metric: str
    edits: int
    ref_units: int
    loop: bool = False  # the committed text repeats itself (a decoding loop)
    partials: int = 0  # partial (uncommitted) texts the client got for the utterance

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        for k in ("first_partial_s", "final_s", "hint_s"):
            if d[k] is not None:
                d[k] = round(d[k], 4)
        return d


def _windows(utts: tuple[Utterance, ...]) -> list[tuple[float, float]]:
    out = []
    for i, u in enumerate(utts):
        lo = -math.inf if i == 0 else (utts[i - 1].end + u.start) / 2
        hi = math.inf if i == len(utts) - 1 else (u.end + utts[i + 1].start) / 2
        out.append((lo, hi))
    return out


def attribute(trace: CallTrace) -> list[list[Obs]]:
    """Text observations per utterance."""
    utts = trace.call.utterances
    wins = _windows(utts)
    onsets = [trace.onset_wall(u) for u in utts]
    per: list[list[Obs]] = [[] for _ in utts]
    for o in trace.obs:
        if o.kind == "hint" or not o.text.strip():
            continue
        if o.start is not None:
            # a segment that starts a little early (VAD pre-roll) still belongs to the utterance it covers most
            mid = o.start if o.end is None else (o.start + min(o.end, o.start + 1.0)) / 2
            idx = next((i for i, (lo, hi) in enumerate(wins) if lo <= mid < hi), None)
        else:
            begun = [i for i, t in enumerate(onsets) if t <= o.t]
            idx = begun[-1] if begun else None
        if idx is not None:
            per[idx].append(o)
    return per


def committed_transcript(obs: list[Obs]) -> str:
    """The committed text of ``obs`` in time order, a later text with the same key replacing
    the earlier one."""
    latest: dict[str, Obs] = {}
    order: list[str] = []
    for i, o in enumerate(obs):
        if not o.committed:
            continue
        k = o.key or f"#{i}"
        if k not in latest:
            order.append(k)
        latest[k] = o
    parts = sorted((latest[k] for k in order), key=lambda o: (o.start if o.start is not None else 0.0))
    return " ".join(p.text.strip() for p in parts if p.text.strip())


def is_human_hint(o: Obs) -> bool:
    """A hint decided (at least in part) by the human-request rule."""
    rules = o.data.get("rules") or ()
    signals = o.data.get("signals") or ()
    return "human_request" in rules or any(
        isinstance(s, dict) and s.get("signal") == "human_request" for s in signals
    )


def analyse(trace: CallTrace) -> list[UtteranceResult]:
    per = attribute(trace)
    hints = [o for o in trace.obs if o.kind == "hint" and is_human_hint(o)]
    out = []
    for u, obs in zip(trace.call.utterances, per):
        onset, end = trace.onset_wall(u), trace.end_wall(u)
        texts = [o.t for o in obs]
        first = (min(texts) - onset) if texts else None
        committed = [o for o in obs if o.committed]
        reaching = [o.t for o in committed if o.end is not None and o.end >= u.end - END_TOLERANCE_S]
        by_ts = bool(reaching)
        if reaching:
            final = min(reaching) - end
        elif committed:
            final = max(o.t for o in committed) - end
        else:
            final = None
        hint = None
        if u.human_request:
            after = [o.t for o in hints if o.t >= onset]
            hint = (min(after) - end) if after else None
        hyp = committed_transcript(obs)
        edits, n = error_counts(u.transcript, hyp, u.language)
        out.append(
            UtteranceResult(
                trace.call.id,
                u.clip_id,
                u.language,
                round(u.end - u.start, 3),
                first,
                final,
                by_ts,
                hint,
                u.human_request,
                u.transcript,
                hyp,
                metric_name(u.language),
                edits,
                n,
                compression_ratio(hyp) > LOOP_COMPRESSION,
                sum(1 for o in obs if not o.committed),
            )
        )
    return out


def summarise(results: list[UtteranceResult], q=(50, 95)) -> dict:
    """Percentiles of the latencies of the finals that arrived; ``missing`` counts the rest.

    An utterance with no final at all (dropped as noise, a decode that produced
    nothing, a backlog the server abandoned when the call ended) is reported as
    missing instead of entering the percentiles; the driver's pass rule bounds
    how many may be missing.
    """
    from .scoring import percentile

    def pct(values):
        return {f"p{int(x)}": (None if (v := percentile(values, x)) is None else round(v, 4)) for x in q}

    finals = [r.final_s for r in results if r.final_s is not None]
    firsts = [r.first_partial_s for r in results if r.first_partial_s is not None]
    hints = [r for r in results if r.human_request]
    hint_vals = [r.hint_s for r in hints if r.hint_s is not None]
    scores: dict[str, dict] = {}
    for m in ("cer", "wer"):
        rs = [r for r in results if r.metric == m]
        if rs:
            e, n = sum(r.edits for r in rs), sum(r.ref_units for r in rs)
            scores[m] = {"value": round(e / n, 4) if n else None, "edits": e, "units": n, "utterances": len(rs)}
    by_language: dict[str, dict] = {}
    for lang in sorted({r.language for r in results}):
        rs = [r for r in results if r.language == lang]
        e, n = sum(r.edits for r in rs), sum(r.ref_units for r in rs)
        by_language[lang] = {"metric": rs[0].metric, "value": round(e / n, 4) if n else None, "edits": e,
                             "units": n, "utterances": len(rs)}
    hint_by_language = {
        lang: {**pct(vals), "phrases": len(rs), "missing": len(rs) - len(vals)}
        for lang in sorted({r.language for r in hints})
        for rs in [[r for r in hints if r.language == lang]]
        for vals in [[r.hint_s for r in rs if r.hint_s is not None]]
    }
    return {
        "utterances": len(results),
        "final_s": {**pct(finals), "mean": _mean(finals), "p95_ci": bootstrap_ci(finals, 95),
                    "missing": sum(1 for r in results if r.final_s is None),
                    "by_timestamp": sum(1 for r in results if r.final_by_timestamp)},
        "first_partial_s": {**pct(firsts), "mean": _mean(firsts),
                            "missing": len(results) - len(firsts)},
        "hint_s": {**pct(hint_vals), "mean": _mean(hint_vals), "phrases": len(hints),
                   "missing": len(hints) - len(hint_vals)},
        "hint_s_by_language": hint_by_language,
        "errors": scores,
        "errors_by_language": by_language,
        "loops": sum(1 for r in results if r.loop),
        "partials": sum(r.partials for r in results),
        "partials_per_utterance": round(sum(r.partials for r in results) / len(results), 2) if results else None,
    }


def bootstrap_ci(values: list[float], q: float, level: float = 0.95, n: int = 2000, seed: int = 0):
    """[low, high] of the ``q``th percentile over ``n`` bootstrap resamples (seeded: the
    same data give the same interval); None under 5 values."""
    xs = np.array([v for v in values if v is not None and not math.isinf(v)], float)
    if len(xs) < 5:
        return None
    rng = np.random.default_rng(seed)
    stats = np.percentile(xs[rng.integers(0, len(xs), (n, len(xs)))], q, axis=1)
    lo, hi = np.percentile(stats, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return [round(float(lo), 4), round(float(hi), 4)]


def _mean(xs):
    xs = [x for x in xs if x is not None and not math.isinf(x)]
    return round(float(np.mean(xs)), 4) if xs else None


__all__ = ["bootstrap_ci", "Obs", "CallTrace", "UtteranceResult", "analyse", "summarise", "attribute", "committed_transcript",
           "END_TOLERANCE_S"]
