"""Diarization error rate of the pipeline on the kit's two-speaker conversations.

DER is pyannote.metrics' ``DiarizationErrorRate`` (missed speech + false alarm
+ speaker confusion, over reference speech; overlap scored), once without a
collar and once with the NIST ±0.25 s collar around reference boundaries
(pyannote's ``collar=0.5`` is the collar's total width).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from voicetriage.diarize.conversations import ConversationSpec, build, telephone_16k

COLLAR = 0.5  # pyannote total width: ±0.25 s


@dataclass(frozen=True)
class DerRow:
    conversation: str
    split: str
    band: str  # "16k" or "8k-ulaw"
    duration_s: float
    speakers_found: int
    der: float
    der_collar: float
    missed: float  # fractions of reference speech, no collar
    false_alarm: float
    confusion: float
    processing_s: float

    @property
    def rtf(self) -> float:
        return self.processing_s / self.duration_s if self.duration_s else 0.0


def score(reference, hypothesis, collar: float = 0.0) -> dict[str, float]:
    from pyannote.metrics.diarization import DiarizationErrorRate

    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    d = metric(reference, hypothesis, detailed=True)
    total = d["total"] or 1.0
    return {
        "der": d["diarization error rate"],
        "missed": d["missed detection"] / total,
        "false_alarm": d["false alarm"] / total,
        "confusion": d["confusion"] / total,
    }


def evaluate(specs: list[ConversationSpec], kit: Path, diarizer, bands=("16k", "8k-ulaw"),
             speakers: int | None | str = "default", progress=None) -> list[DerRow]:
    rows = []
    for spec in specs:
        conv = build(spec, kit)
        ref = conv.reference()
        for band in bands:
            audio = conv.samples if band == "16k" else telephone_16k(conv.samples)
            t0 = time.perf_counter()
            hyp = diarizer(audio, speakers=speakers)
            took = time.perf_counter() - t0
            plain, collared = score(ref, hyp), score(ref, hyp, COLLAR)
            row = DerRow(spec.id, spec.split, band, round(conv.duration, 2), len(hyp.labels()),
                         plain["der"], collared["der"], plain["missed"], plain["false_alarm"],
                         plain["confusion"], took)
            rows.append(row)
            if progress:
                progress(row)
    return rows


def pooled(rows: list[DerRow], band: str, split: str | None = None) -> tuple[float, float]:
    """Duration-weighted DER over conversations (no collar, with collar)."""
    sel = [r for r in rows if r.band == band and (split is None or r.split == split)]
    tot = sum(r.duration_s for r in sel) or 1.0
    return (sum(r.der * r.duration_s for r in sel) / tot, sum(r.der_collar * r.duration_s for r in sel) / tot)


def table(rows: list[DerRow]) -> str:
    out = ["| conversation | split | band | s | speakers | DER | DER ±0.25 s | missed | false alarm | confusion | RTF |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r.conversation} | {r.split} | {r.band} | {r.duration_s:.1f} | {r.speakers_found} | "
                   f"{100 * r.der:.1f}% | {100 * r.der_collar:.1f}% | {100 * r.missed:.1f}% | "
                   f"{100 * r.false_alarm:.1f}% | {100 * r.confusion:.1f}% | {r.rtf:.2f} |")
    for band in sorted({r.band for r in rows}):
        for split in ("test", "tune"):
            if any(r.band == band and r.split == split for r in rows):
                a, b = pooled(rows, band, split)
                out.append(f"| **all {split}** | {split} | {band} | | | **{100 * a:.1f}%** | **{100 * b:.1f}%** | | | | |")
    return "\n".join(out)


def as_json(rows: list[DerRow]) -> list[dict]:
    return [dict(asdict(r), rtf=r.rtf) for r in rows]
