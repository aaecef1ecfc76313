"""How far the audio's syllable nuclei stand in for the transcript's syllables.

``python -m benchmarks.syllable_nuclei [MANIFEST]`` (default ../shared/eval/manifest.jsonl)
counts the syllable nuclei (:func:`voicetriage.triage.signals.prosody.syllable_nuclei`,
de Jong & Wempe 2009) over each whole clip and prints, per language, the ratio of that
count to the reference transcript's syllables (median, 10th and 90th percentiles).
No model: the pitch tracker and the intensity contour only. The speaking-rate signal
uses the count where the recogniser does not follow the caller (docs/signals.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from voicetriage.audio.files import read_audio
from voicetriage.evaluation.manifest import load_manifest
from voicetriage.triage.signals.prosody import ProsodyTracker, syllable_nuclei
from voicetriage.triage.signals.text import count_syllables, countable

DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "manifest.jsonl"


def clip_nuclei(path: Path) -> int:
    audio = read_audio(path, 16000)[0]
    tracker = ProsodyTracker()
    tracker.feed(audio, 0.0)
    tracker.step(None)
    f0, _, db = tracker.frames(0.0, len(audio) / 16000)
    return syllable_nuclei(f0, db)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("manifest", nargs="?", default=str(DEFAULT))
    args = ap.parse_args(argv)
    by_lang: dict[str, list[float]] = {}
    for clip in load_manifest(args.manifest):
        if not clip.transcript or not countable(clip.transcript):
            continue
        ref = count_syllables(clip.transcript)
        if ref < 3:
            continue
        key = clip.language + (" (synthetic)" if clip.synthetic else "")
        by_lang.setdefault(key, []).append(clip_nuclei(clip.path) / ref)
    print("| clips | n | nuclei / reference syllables: median | p10 | p90 |")
    print("|---|---|---|---|---|")
    for lang, ratios in sorted(by_lang.items()):
        p10, med, p90 = np.percentile(ratios, [10, 50, 90])
        print(f"| {lang} | {len(ratios)} | {med:.2f} | {p10:.2f} | {p90:.2f} |")


if __name__ == "__main__":
    main()
