"""The evaluation report: its JSON form and its markdown tables."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from voicetriage.asr.engine import PROBE_PROMPTS
from voicetriage.core.events import Signal
from voicetriage.evaluation.manifest import AGE_BANDS, ClipRun
from voicetriage.evaluation.scoring import (
    DIALECT_QUEUES,
    _auc,
    score_age,
    score_hints,
    score_language,
    score_other,
    score_rate,
    score_requests,
    score_routing,
)
from voicetriage.triage.signals.options import LANGUAGES


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
                   f"other human-queue hints {len(rq.get('other_human_hints', []))} "
                   f"({', '.join(rq.get('other_human_hints', [])) or 'none'}), "
                   f"dialect hints {len(rq['false_dialect_routing'])} "
                   f"({', '.join(rq['false_dialect_routing']) or 'none'}); hint after the request's end: "
                   + (f"median {d['median']:.2f} s, max {d['max']:.2f} s (n={d['n']}, "
                      f"{rq.get('from_partial', 0)} from a partial)" if d else "-"))
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
